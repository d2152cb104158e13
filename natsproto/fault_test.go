package natsproto

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// faultyStore fails every Write while fail is set, in the spirit of
// Pebble's errorfs: the failure is the backend's, not the request's.
type faultyStore struct {
	store.Store
	fail atomic.Bool
}

var errDisk = errors.New("injected: disk I/O error")

func (s *faultyStore) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	if s.fail.Load() {
		return nil, errDisk
	}
	return s.Store.Write(ctx, b)
}

func TestFaultFailedWriteNeverAcks(t *testing.T) {
	var fs *faultyStore
	h := newHarnessOver(t, nil, func(s store.Store) store.Store { fs = &faultyStore{Store: s}; return fs })

	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	fs.fail.Store(true)
	withID := map[string][]string{HdrMsgID: {"0123456789abcdef0123456789abcdef"}}
	reply := h.publish("kq.trade.pay", withID, "x")
	require.Equal(t, 503, errCode(t, reply), "a failed write is an error reply, never a success ack: %s", reply)
	require.Empty(t, h.deliveries(dlv), "a message with the publisher's id is delivered only once stored")
	require.Zero(t, h.groupStat("trade", "s-trade").Inflight, "the reserved consumer slot is released")

	// A message with a broker-made id is delivered while its save waits
	// (unless the write failed first: TestEarlyDeliveryJoinsSaveAndAck
	// pins the order); when the save fails, the publisher gets the error
	// and a delivery already sent is forgotten: its ack changes nothing and
	// nothing stays pending.
	reply = h.publish("kq.trade.pay", nil, "early")
	require.Equal(t, 503, errCode(t, reply), "a failed write is an error reply, never a success ack: %s", reply)
	early := h.deliveries(dlv)
	require.LessOrEqual(t, len(early), 1)
	require.Zero(t, h.groupStat("trade", "s-trade").Inflight, "the early delivery is forgotten")
	fs.fail.Store(false)
	for _, d := range early {
		require.Equal(t, 409, errCode(t, h.ack(d, "+ACK")), "the forgotten delivery's id is unknown")
	}
	require.Zero(t, h.groupStat("trade", "s-trade").Pending)

	fs.fail.Store(false)
	require.Zero(t, errCode(t, h.publish("kq.trade.pay", nil, "y")))
	ds := h.deliveries(dlv)
	require.Len(t, ds, 1)
	require.Equal(t, "y", string(ds[0].Data))

	// An ack whose store update fails is answered with an error, and the
	// message stays pending: it will be redelivered.
	fs.fail.Store(true)
	require.Equal(t, 503, errCode(t, h.ack(ds[0], "+ACK")))
	fs.fail.Store(false)
	require.Equal(t, int64(1), h.groupStat("trade", "s-trade").Pending)
}

// gatedStore holds every Write while closed, so a test can look at the
// broker while its writes are queued but not yet durable.
type gatedStore struct {
	store.Store
	gate    atomic.Pointer[chan struct{}] // nil: open
	waiting atomic.Int32                  // writes held at the gate

	mu      sync.Mutex
	batches []gatedBatch // what each Write carried
}

type gatedBatch struct {
	saves []string // message ids
	acks  []string // message ids of OpAck updates
}

func (s *gatedStore) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	if g := s.gate.Load(); g != nil {
		s.waiting.Add(1)
		<-*g
		s.waiting.Add(-1)
	}
	var gb gatedBatch
	for _, m := range b.Saves {
		gb.saves = append(gb.saves, m.ID)
	}
	for _, u := range b.Updates {
		if u.Op == store.OpAck {
			gb.acks = append(gb.acks, u.ID)
		}
	}
	s.mu.Lock()
	s.batches = append(s.batches, gb)
	s.mu.Unlock()
	return s.Store.Write(ctx, b)
}

func (s *gatedStore) hold() { g := make(chan struct{}); s.gate.Store(&g) }

func (s *gatedStore) release() { close(*s.gate.Swap(nil)) }

// TestRecoverTrustsNoStaleDue: a backlog delivered from the store and
// acknowledged at once is not delivered again while the lease and ack
// writes are still on their way to the store (the store then still says
// "due").
func TestRecoverTrustsNoStaleDue(t *testing.T) {
	var gs *gatedStore
	h := newHarnessOver(t, nil, func(s store.Store) store.Store { gs = &gatedStore{Store: s}; return gs })
	c := h.bind("s-trade", "$KQ.DLV.s-trade.a", 1, "", direct("trade", "pay", true))
	require.True(t, h.b.Leave("s-trade", c))
	for i := 0; i < 20; i++ {
		h.publish("kq.trade.pay", nil, "x")
	}
	h.bind("s-trade", "$KQ.DLV.s-trade.b", 2, "")

	gs.hold() // writes from now on wait
	t.Cleanup(func() {
		if gs.gate.Load() != nil {
			gs.release() // a failed assertion must not leave the writer stuck
		}
	})
	h.b.Tick(h.ctx, true)
	ds := h.deliveries("$KQ.DLV.s-trade.b")
	require.Len(t, ds, 20)
	for _, d := range ds {
		h.s.handleAck(&Msg{Subject: d.Reply, Data: []byte("+ACK")})
	}
	h.b.Tick(h.ctx, true)
	h.b.Tick(h.ctx, false)
	require.Empty(t, h.deliveries("$KQ.DLV.s-trade.b"), "the store's due answer is stale while writes are queued")

	gs.release()
	h.tick()
	require.Empty(t, h.deliveries("$KQ.DLV.s-trade.b"))
	require.Zero(t, h.groupStat("trade", "s-trade").Pending)
}

// TestEarlyDeliveryJoinsSaveAndAck pins when a message is delivered: one
// with a broker-made id at once, while its save waits for the writer, so
// that its ack joins the save in one batch; one with the publisher's id
// only once stored. The publisher's ack waits for the write either way.
func TestEarlyDeliveryJoinsSaveAndAck(t *testing.T) {
	var gs *gatedStore
	h := newHarnessOver(t, nil, func(s store.Store) store.Store { gs = &gatedStore{Store: s}; return gs })
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))

	// Keep the writer busy with a write of its own while we publish.
	gs.hold()
	t.Cleanup(func() {
		if gs.gate.Load() != nil {
			gs.release()
		}
	})
	busy := make(chan struct{}, 1) // the ack of a message that does not exist: only its completion matters
	require.NoError(t, h.w.Update(store.Update{Op: store.OpAck, Topic: "\x00", ID: "\x00"}, func(error) { busy <- struct{}{} }))
	require.Eventually(t, func() bool { return gs.waiting.Load() == 1 }, 5*time.Second, time.Millisecond,
		"the writer took its write and waits at the gate")

	h.s.handlePublish(&Msg{Subject: "kq.trade.pay", Reply: "_INBOX.early", Data: []byte("early")})
	ds := h.deliveries(dlv)
	require.Len(t, ds, 1, "a message with a broker-made id is delivered before its save is written")
	require.Empty(t, h.tr.take("_INBOX.early"), "but its publisher is answered only once it is durable")
	h.s.handleAck(&Msg{Subject: ds[0].Reply, Reply: "_INBOX.ack", Data: []byte("+ACK")})
	require.Empty(t, h.tr.take("_INBOX.ack"), "the ack is answered once durable")

	withID := map[string][]string{HdrMsgID: {"0123456789abcdef0123456789abcdef"}}
	h.s.handlePublish(&Msg{Subject: "kq.trade.pay", Reply: "_INBOX.late", Header: withID, Data: []byte("late")})
	require.Empty(t, h.deliveries(dlv), "a message with the publisher's id waits for its save")

	gs.release()
	<-busy
	h.settle()
	require.Zero(t, errCode(t, h.tr.take("_INBOX.early")[0].Data))
	require.Empty(t, h.tr.take("_INBOX.ack")[0].Data, "the ack succeeded")
	require.Zero(t, errCode(t, h.tr.take("_INBOX.late")[0].Data))
	late := h.deliveries(dlv)
	require.Len(t, late, 1)
	require.Equal(t, "late", string(late[0].Data))

	id := ds[0].Header[HdrMsgID][0]
	gs.mu.Lock()
	defer gs.mu.Unlock()
	joined := false
	for _, b := range gs.batches {
		if slices.Contains(b.saves, id) && slices.Contains(b.acks, id) {
			joined = true
		}
	}
	require.True(t, joined, "the save and the ack of %s were written in one batch: %+v", id, gs.batches)
	require.Equal(t, int64(1), h.groupStat("trade", "s-trade").Pending, "only the late message is pending")
}
