package daemon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/config"
)

// fastTx makes check-backs quick enough for tests.
func fastTx(c *config.Config) {
	c.Tx = config.TxConfig{FirstCheck: 200 * time.Millisecond, Interval: 200 * time.Millisecond, MaxChecks: 3}
}

func prepare(t *testing.T, nc *nats.Conn, id, group string) {
	t.Helper()
	msg, err := nc.RequestMsg(&nats.Msg{Subject: "kq.trade.pay", Header: nats.Header{
		"Kq-Tx": {"prepare"}, "Kq-Msg-Id": {id}, "Kq-Group": {group}, "Order": {"42"}}, Data: []byte("tx-" + id)}, 5*time.Second)
	require.NoError(t, err)
	var r apiErr
	require.NoError(t, json.Unmarshal(msg.Data, &r))
	require.Nil(t, r.Error, string(msg.Data))
}

// resolve calls $KQ.API.TX.<group> and returns the error code (0: ok).
func resolve(t *testing.T, nc *nats.Conn, group, id, action string) int {
	t.Helper()
	var r apiErr
	request(t, nc, "$KQ.API.TX."+group, map[string]string{"topic": "trade", "id": id, "action": action}, &r)
	if r.Error == nil {
		return 0
	}
	return r.Error.Code
}

func TestE2ETxCommitDeliversRollbackNever(t *testing.T) {
	url := startBroker(t, func(c *config.Config) { c.Tx.FirstCheck = time.Hour })
	_, ch := consume(t, url, "s-trade", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	prod := connect(t, url, nats.UserInfo("p-trade", ""))
	commitID, rollbackID := strings.Repeat("c", 32), strings.Repeat("d", 32)
	prepare(t, prod, commitID, "p-trade")
	prepare(t, prod, rollbackID, "p-trade")
	requireNone(t, ch, 300*time.Millisecond)

	var list struct {
		Total int
		Items []struct{ ID, Group string }
	}
	request(t, prod, "$KQ.ADMIN.TX.LIST", nil, &list)
	require.Equal(t, 2, list.Total)

	require.Zero(t, resolve(t, prod, "p-trade", commitID, "commit"))
	m := recv(t, ch)
	require.Equal(t, commitID, m.Header.Get("Kq-Msg-Id"))
	require.Equal(t, "42", m.Header.Get("Order"))
	require.NoError(t, m.Ack())
	require.Zero(t, resolve(t, prod, "p-trade", rollbackID, "rollback"))
	requireNone(t, ch, 300*time.Millisecond)

	require.Zero(t, resolve(t, prod, "p-trade", commitID, "commit"), "the same way twice is a no-op")
	require.Equal(t, 409, resolve(t, prod, "p-trade", commitID, "rollback"), "the other way is a conflict")
	require.Equal(t, 409, resolve(t, prod, "p-trade", rollbackID, "commit"))
	requireNone(t, ch, 200*time.Millisecond)
}

func TestE2ETxCheckBackOverNATS(t *testing.T) {
	url := startBroker(t, fastTx)
	_, ch := consume(t, url, "s-trade", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	prod := connect(t, url, nats.UserInfo("p-trade", ""))
	id, undecided := strings.Repeat("e", 32), strings.Repeat("f", 32)
	// The producer "crashes" before deciding; the one that comes back
	// answers check-backs: commit for id, unknown for the other.
	prepare(t, prod, id, "p-trade")
	prepare(t, prod, undecided, "p-trade")
	checks := make(chan string, 100)
	_, err := prod.QueueSubscribe("$KQ.TXCHECK.p-trade", "p-trade", func(m *nats.Msg) {
		checks <- m.Header.Get("Kq-Msg-Id")
		if m.Header.Get("Kq-Msg-Id") == id {
			_ = m.Respond([]byte("commit"))
		} else {
			_ = m.Respond([]byte(" unknown\n"))
		}
	})
	require.NoError(t, err)
	m := recv(t, ch)
	require.Equal(t, id, m.Header.Get("Kq-Msg-Id"))
	require.NoError(t, m.Ack())
	// Unknown every time: after MaxChecks the final action (rollback).
	require.Eventually(t, func() bool {
		var list struct{ Total int }
		request(t, prod, "$KQ.ADMIN.TX.LIST", nil, &list)
		return list.Total == 0
	}, 10*time.Second, 50*time.Millisecond)
	requireNone(t, ch, 300*time.Millisecond)
	n := 0
	for len(checks) > 0 {
		if <-checks == undecided {
			n++
		}
	}
	require.Equal(t, 3, n, "asked exactly MaxChecks times")
}

func TestE2ETxKiteQProducer(t *testing.T) {
	// The first check-back comes well after the 200 ms this test waits
	// before its spontaneous commit, so that the commit always wins.
	k := startKiteQ(t, func(c *config.Config) {
		c.Tx = config.TxConfig{FirstCheck: time.Second, Interval: 200 * time.Millisecond, MaxChecks: 3}
	})
	k.bind(t, "s-trade", "trade", "pay")
	_, ch := consume(t, k.url, "s-trade", "", "")
	p := kiteqClient(t, k.kiteq, "p-trade", 0)

	// Spontaneous commit (opaque 0) after the store ack, as the client does.
	h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
	h.Commit = proto.Bool(false)
	require.True(t, p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, h, []byte("kiteq-tx"))).GetStatus())
	requireNone(t, ch, 200*time.Millisecond)
	p.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
	m := recv(t, ch)
	require.Equal(t, h.GetMessageId(), m.Header.Get("Kq-Msg-Id"))
	require.NoError(t, m.Ack())

	// No decision: the broker checks back on the producer's connection,
	// which answers rollback; nothing is delivered.
	h2 := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
	h2.Commit = proto.Bool(false)
	require.True(t, p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, h2, []byte("never"))).GetStatus())
	f, msg := p.Read()
	require.Equal(t, wire.CmdTxAck, f.Cmd)
	check := msg.(*wire.TxACKPacket)
	require.Equal(t, "Server Check", check.GetFeedback())
	require.Equal(t, h2.GetMessageId(), check.GetHeader().GetMessageId())
	p.SendWith(f.Opaque, wire.CmdTxAck, &wire.TxACKPacket{Header: check.GetHeader(), Status: proto.Int32(wire.TxRollback), Feedback: proto.String("")})
	requireNone(t, ch, 500*time.Millisecond)
}

func TestE2ETxCrossProtocol(t *testing.T) {
	k := startKiteQ(t, func(c *config.Config) { c.Tx.FirstCheck = time.Hour })
	k.bind(t, "s-trade", "trade", "pay")
	_, ch := consume(t, k.url, "s-trade", "", "")

	// Prepared over KiteQ, committed over NATS.
	p := kiteqClient(t, k.kiteq, "p-trade", 0)
	h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
	h.Commit = proto.Bool(false)
	require.True(t, p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, h, []byte("x"))).GetStatus())
	nc := connect(t, k.url, nats.UserInfo("p-trade", ""))
	require.Zero(t, resolve(t, nc, "p-trade", h.GetMessageId(), "commit"))
	require.Equal(t, h.GetMessageId(), recv(t, ch).Header.Get("Kq-Msg-Id"))

	// Prepared over NATS, committed by a KiteQ TxAck.
	id := strings.Repeat("a", 32)
	prepare(t, nc, id, "p-trade")
	requireNone(t, ch, 200*time.Millisecond)
	h2 := compattest.Header(id, "trade", "pay", "p-trade")
	h2.Commit = proto.Bool(false)
	p.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: h2, Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
	require.Equal(t, id, recv(t, ch).Header.Get("Kq-Msg-Id"))
}
