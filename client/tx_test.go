package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// txPending returns how many prepared messages the broker holds.
func txPending(t *testing.T, tp *TxProducer) int {
	t.Helper()
	var list struct {
		Total int `json:"total"`
	}
	api(t, tp.nc, "$KQ.ADMIN.TX.LIST", nil, &list)
	return list.Total
}

func TestClientTxCommitAndRollback(t *testing.T) {
	b := startBroker(t, writeConfig(t, `txFirstCheck = "1h"`)...)
	tp := NewTxProducer(connect(t, b.url(), "p-trade"), "p-trade")
	_, ch := startConsumer(t, connect(t, b.url(), "s-trade"), "s-trade", []Binding{Direct("trade", "pay")}, nil)
	ctx := t.Context()

	id := NewMessageID()
	var sawID bool
	require.NoError(t, tp.PublishTx(ctx, "trade", "pay", []byte("committed"), func(context.Context) (bool, error) {
		sawID = txPending(t, tp) == 1 // prepared, not delivered yet
		return true, nil
	}, MessageID(id)))
	require.True(t, sawID)
	d := recv(t, ch)
	require.Equal(t, id, d.ID)
	require.Equal(t, "committed", string(d.Body))

	require.NoError(t, tp.PublishTx(ctx, "trade", "pay", []byte("no"), func(context.Context) (bool, error) {
		return false, nil
	}))
	boom := errors.New("local transaction failed")
	err := tp.PublishTx(ctx, "trade", "pay", []byte("failed"), func(context.Context) (bool, error) {
		return true, boom
	})
	require.ErrorIs(t, err, boom, "an error from doTx rolls back and is returned")
	requireNone(t, ch, 500*time.Millisecond)
	require.Zero(t, txPending(t, tp))

	// Resolving again the same way is a no-op; the other way a 409.
	require.NoError(t, tp.Resolve(ctx, "trade", id, true))
	var e *Error
	require.ErrorAs(t, tp.Resolve(ctx, "trade", id, false), &e)
	require.Equal(t, 409, e.Code)
}

// TestClientTxCheckBack: the producer prepares and "dies" undecided (a
// Prepare never resolved, a doTx that panics); HandleChecks answers the
// broker's check-backs and decides.
func TestClientTxCheckBack(t *testing.T) {
	b := startBroker(t, writeConfig(t, `txFirstCheck = "300ms"`, `txCheckInterval = "300ms"`)...)
	tp := NewTxProducer(connect(t, b.url(), "p-trade"), "p-trade")
	_, ch := startConsumer(t, connect(t, b.url(), "s-trade"), "s-trade", []Binding{Direct("trade", "pay")}, nil)
	ctx := t.Context()

	commitID, rollbackID, panicID := NewMessageID(), NewMessageID(), NewMessageID()
	_, err := tp.Prepare(ctx, "trade", "pay", []byte("c"), MessageID(commitID), Properties(map[string]string{"order": "42"}))
	require.NoError(t, err)
	ack, err := tp.Prepare(ctx, "trade", "pay", []byte("r"), MessageID(rollbackID))
	require.NoError(t, err)
	require.Equal(t, rollbackID, ack.ID)
	require.Panics(t, func() {
		_ = tp.PublishTx(ctx, "trade", "pay", []byte("p"), func(context.Context) (bool, error) {
			panic("the process dies mid-transaction")
		}, MessageID(panicID))
	})
	requireNone(t, ch, 200*time.Millisecond)
	require.Equal(t, 3, txPending(t, tp))

	var mu sync.Mutex
	asked := map[string]CheckRequest{}
	stop, err := tp.HandleChecks(func(r CheckRequest) Decision {
		mu.Lock()
		asked[r.ID] = r
		mu.Unlock()
		if r.ID == rollbackID {
			return Rollback
		}
		return Commit
	})
	require.NoError(t, err)

	got := map[string]bool{recv(t, ch).ID: true, recv(t, ch).ID: true}
	require.Equal(t, map[string]bool{commitID: true, panicID: true}, got)
	require.Eventually(t, func() bool { return txPending(t, tp) == 0 }, 5*time.Second, 20*time.Millisecond)
	requireNone(t, ch, 300*time.Millisecond)

	mu.Lock()
	r := asked[commitID]
	mu.Unlock()
	require.Equal(t, "trade", r.Topic)
	require.Equal(t, "pay", r.MessageType)
	require.Equal(t, "p-trade", r.Group)
	require.Equal(t, "c", string(r.Body))
	require.Equal(t, map[string]string{"order": "42"}, r.Properties)

	require.NoError(t, stop())
	require.NoError(t, stop(), "idempotent")
}

// TestClientSecretsMode: with group secrets configured, connections made
// with Connect (the group's inbox prefix) publish, consume and resolve as
// their group; nats.go's default inbox gets no reply (issue #16).
func TestClientSecretsMode(t *testing.T) {
	b := startBrokerAs(t, "admin", "root", writeConfig(t, `txFirstCheck = "1h"`, `adminSecret = "root"`,
		`[clusters.default_dev.secrets]`, `p-trade = "p4ss"`, `s-trade = "s3cret"`)...)
	pc, err := Connect(b.url(), "p-trade", "p4ss")
	require.NoError(t, err)
	t.Cleanup(pc.Close)
	cc, err := Connect(b.url(), "s-trade", "s3cret")
	require.NoError(t, err)
	t.Cleanup(cc.Close)
	_, ch := startConsumer(t, cc, "s-trade", []Binding{Direct("trade", "pay")}, nil)

	ctx := t.Context()
	ack, err := NewProducer(pc, "p-trade").Publish(ctx, "trade", "pay", []byte("plain"))
	require.NoError(t, err)
	require.Equal(t, 1, ack.Groups)
	require.Equal(t, "plain", string(recv(t, ch).Body))
	tp := NewTxProducer(pc, "p-trade")
	require.NoError(t, tp.PublishTx(ctx, "trade", "pay", []byte("tx"), func(context.Context) (bool, error) { return true, nil }))
	require.Equal(t, "tx", string(recv(t, ch).Body))

	// Another group's prepared message is not the consumer's to resolve.
	ack, err = tp.Prepare(ctx, "trade", "pay", []byte("theirs"))
	require.NoError(t, err)
	var e *Error
	require.ErrorAs(t, NewTxProducer(cc, "s-trade").Resolve(ctx, "trade", ack.ID, true), &e)
	require.Equal(t, 403, e.Code)
	require.Equal(t, 14403, e.ErrCode)
	require.NoError(t, tp.Resolve(ctx, "trade", ack.ID, false))
	requireNone(t, ch, 300*time.Millisecond)

	// The default inbox is refused: a request gets no reply.
	dc, err := nats.Connect(b.url(), nats.UserInfo("p-trade", "p4ss"))
	require.NoError(t, err)
	t.Cleanup(dc.Close)
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err = NewProducer(dc, "p-trade").Publish(sctx, "trade", "pay", []byte("unacked"))
	require.Error(t, err)
}
