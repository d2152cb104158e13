package compat_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(s))
	require.NoError(t, err)
	return b
}

// header returns a raw frame header declaring bodyLen bytes of cmd.
func header(opaque uint32, cmd wire.Cmd, bodyLen int32) []byte {
	h := make([]byte, wire.HeaderLen)
	binary.BigEndian.PutUint32(h[0:], opaque)
	h[4] = byte(cmd)
	binary.BigEndian.PutUint32(h[15:], uint32(bodyLen))
	return h
}

func TestCompatHandshake(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, nil)
	c := compattest.Dial(t, addr)

	// Appendix C: ConnMeta{"s-user-profile","123456",0} with opaque 1 is
	// answered with exactly ConnAuthAck{true,"Auth Succ"}, opaque 1.
	require.NoError(t, c.WriteRaw(mustHex(t, "00000001 02 0000 0000000000000000 0000001a | 0a0e732d757365722d70726f66696c6512063132333435361800")))
	want := mustHex(t, "00000001 03 0000 0000000000000000 0000000d | 08011209417574682053756363")
	got := make([]byte, len(want))
	require.NoError(t, c.Conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.ReadFull(c.Conn, got)
	require.NoError(t, err)
	require.Equal(t, want, got)

	j := next(t, b.joined)
	require.Equal(t, "s-user-profile", j.group)
	require.Equal(t, c.Conn.LocalAddr().String(), j.key, "the key is the remote address")
	require.Zero(t, j.warmup)

	c2 := compattest.Dial(t, addr)
	ack := c2.Handshake("s-trade", "", 30)
	require.True(t, ack.GetStatus())
	require.NotEmpty(t, ack.GetFeedback())
	j2 := next(t, b.joined)
	require.Equal(t, 30*time.Second, j2.warmup)

	c.Close()
	require.Equal(t, "s-user-profile/"+j.id, next(t, b.left))
	c2.Heartbeat(1) // the other connection is unaffected
}

func TestCompatHandshakeSecrets(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, func(c *compat.Config) { c.Secrets = map[string]string{"s-trade": "s3cret"} })
	for _, tc := range []struct{ name, group, secret string }{
		{"wrong secret", "s-trade", "guess"},
		{"unknown group", "intruder", "s3cret"},
		{"empty group", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := compattest.Dial(t, addr)
			ack := c.Handshake(tc.group, tc.secret, 0)
			require.False(t, ack.GetStatus())
			require.True(t, strings.HasPrefix(ack.GetFeedback(), "kq: "), ack.GetFeedback())
			require.Empty(t, c.ExpectClosed(), "the refusal is the last frame")
		})
	}
	c := compattest.Dial(t, addr)
	c.MustHandshake("s-trade", "s3cret", 0)
	require.Equal(t, "s-trade", next(t, b.joined).group)
	none(t, b.joined)
}

func TestCompatHandshakeAgain(t *testing.T) {
	b := newFakeBroker()
	c, _ := joinedClient(t, b, startServer(t, b, nil), "s-trade")
	c.MustHandshake("s-trade", "", 0)
	ack := c.Handshake("s-other", "", 0)
	require.False(t, ack.GetStatus())
	require.Contains(t, ack.GetFeedback(), "already joined")
	c.Heartbeat(3) // still open
	none(t, b.joined)
}

func TestCompatFrameBeforeHandshakeCloses(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, nil)
	t.Run("conn auth", func(t *testing.T) {
		c := compattest.Dial(t, addr)
		c.Send(wire.CmdConnAuth, &wire.ConnAuthAck{Status: proto.Bool(true), Feedback: proto.String("x")})
		require.Empty(t, c.ExpectClosed())
	})
	t.Run("store ack", func(t *testing.T) {
		c := compattest.Dial(t, addr)
		c.Send(wire.CmdMessageStoreAck, &wire.MessageStoreAck{MessageId: proto.String(compattest.NewID()), Status: proto.Bool(true), Feedback: proto.String("")})
		require.Empty(t, c.ExpectClosed())
	})
	t.Run("unknown command", func(t *testing.T) {
		c := compattest.Dial(t, addr)
		require.NoError(t, c.WriteRaw(append(header(1, 0x7f, 2), 1, 2)))
		require.Empty(t, c.ExpectClosed())
	})
	t.Run("malformed conn meta", func(t *testing.T) {
		c := compattest.Dial(t, addr)
		require.NoError(t, c.WriteRaw(append(header(1, wire.CmdConnMeta, 2), 0x0a, 0x00))) // no secretKey
		require.Empty(t, c.ExpectClosed())
	})
	t.Run("malformed heartbeat", func(t *testing.T) {
		c := compattest.Dial(t, addr)
		require.NoError(t, c.WriteRaw(header(1, wire.CmdHeartbeat, 0))) // no version
		require.Empty(t, c.ExpectClosed())
	})
	none(t, b.joined)
	none(t, b.publishes)
}

// TestCompatReconnectBacklogBeforeHandshake plays kiteq-client-go
// reconnecting: its write queue outlives the old connection, so the new one
// starts with what the old one never wrote (a heartbeat, DeliverAcks, a
// TxAck, a publish) and then the ConnMeta. The connection is kept, nothing
// is done for it before the handshake, and the handshake succeeds.
func TestCompatReconnectBacklogBeforeHandshake(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, nil)
	h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
	c := compattest.Dial(t, addr)

	hb := c.Send(wire.CmdHeartbeat, &wire.HeartBeat{Version: proto.Int64(7)})
	c.SendWith(0x80000001, wire.CmdDeliverAck, &wire.DeliverAck{MessageId: h.MessageId, Topic: h.Topic, MessageType: h.MessageType, GroupId: h.GroupId, Status: proto.Bool(true)})
	c.Send(wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(1), Feedback: proto.String("")})
	pub := c.Publish(wire.CmdBytesMessage, h, []byte("x"))

	require.Equal(t, int64(7), c.Expect(wire.CmdHeartbeat, hb).(*wire.HeartBeat).GetVersion())
	ack := c.ExpectStoreAck(pub)
	require.False(t, ack.GetStatus())
	require.Equal(t, h.GetMessageId(), ack.GetMessageId())
	require.Contains(t, ack.GetFeedback(), "unauthorized")

	c.MustHandshake("s-trade", "", 0)
	c.Heartbeat(8)
	none(t, b.publishes)
	none(t, b.acks)
	none(t, b.resolves)
}

func TestCompatHandshakeTimeout(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, func(c *compat.Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	silent := compattest.Dial(t, addr)
	partial := compattest.Dial(t, addr)
	require.NoError(t, partial.WriteRaw([]byte{0, 0, 0, 1, 2}))
	require.Empty(t, silent.ExpectClosed())
	require.Empty(t, partial.ExpectClosed())

	// Once joined, an idle connection stays open (the original never
	// closes idle connections).
	c, _ := joinedClient(t, b, addr, "s-trade")
	time.Sleep(300 * time.Millisecond) // longer than HandshakeTimeout, on purpose
	c.Heartbeat(1)
}

func TestCompatBadFrameClosesOnlyThatConnection(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, nil)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"negative length", header(5, wire.CmdHeartbeat, -1)},
		{"length over 2 MiB", header(5, wire.CmdBytesMessage, wire.MaxBodyLen+1)},
		{"heartbeat without version", header(5, wire.CmdHeartbeat, 0)},
		{"publish that is not protobuf", append(header(5, wire.CmdBytesMessage, 3), 0xff, 0xff, 0xff)},
		{"deliver ack missing status", append(header(5, wire.CmdDeliverAck, 2), 0x0a, 0x00)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, jb := joinedClient(t, b, addr, "s-bad")
			good, _ := joinedClient(t, b, addr, "s-good")
			require.NoError(t, bad.WriteRaw(tc.raw))
			require.Empty(t, bad.ExpectClosed())
			require.Equal(t, "s-bad/"+jb.id, next(t, b.left))
			good.Heartbeat(42)
			good.Close()
			next(t, b.left)
		})
	}
}

func TestCompatHeartbeat(t *testing.T) {
	b := newFakeBroker()
	c, _ := joinedClient(t, b, startServer(t, b, nil), "s-trade")
	for _, v := range []int64{1700000000, 0, -5, 1700000001} {
		c.Heartbeat(v)
	}
	// Appendix C: HeartBeat{1700000000}, opaque 2, is echoed byte for byte.
	frame := mustHex(t, "00000002 01 0000 0000000000000000 00000006 | 0880e2cfaa06")
	require.NoError(t, c.WriteRaw(frame))
	f, err := c.TryRead()
	require.NoError(t, err)
	require.Equal(t, frame, wire.AppendFrame(nil, f))
}

func TestCompatSlowStoreDoesNotBlockHeartbeats(t *testing.T) {
	b := newFakeBroker()
	held := make(chan func(compat.Result, error), 10)
	b.onPublish = func(_ *store.Message, _ compat.Mode, done func(compat.Result, error)) { held <- done }
	c, _ := joinedClient(t, b, startServer(t, b, nil), "p-trade")

	o1 := c.Publish(wire.CmdBytesMessage, compattest.Header(compattest.NewID(), "trade", "pay", "p-trade"), []byte("a"))
	o2 := c.Publish(wire.CmdBytesMessage, compattest.Header(compattest.NewID(), "trade", "pay", "p-trade"), []byte("b"))
	done1, done2 := next(t, held), next(t, held)
	c.Heartbeat(7) // answered while both publishes wait for the store

	// Store acks go out in the order the store answers, each with its
	// publish's opaque.
	done2(compat.Result{Seq: 2}, nil)
	require.True(t, c.ExpectStoreAck(o2).GetStatus())
	done1(compat.Result{}, &kqerr.Error{Code: kqerr.Unavailable, Description: "kq: store unavailable"})
	ack := c.ExpectStoreAck(o1)
	require.False(t, ack.GetStatus())
	require.Equal(t, "kq: store unavailable", ack.GetFeedback())
}

func TestCompatTxAckResolves(t *testing.T) {
	b := newFakeBroker()
	c, _ := joinedClient(t, b, startServer(t, b, nil), "p-trade")
	h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
	h.Commit = proto.Bool(false)
	// The producer's spontaneous commit (opaque 0), an unknown answer and
	// a rollback (any opaque): the decisions reach the broker, status 0
	// does not, and none gets a reply.
	c.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
	c.SendWith(0x80000001, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxUnknown), Feedback: proto.String("Server Check")})
	c.SendWith(7, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxRollback), Feedback: proto.String("no stock")})
	c.Heartbeat(9) // the next frame is the heartbeat's echo: no TxAck reply came first
	require.Equal(t, resolved{"p-trade", "trade", h.GetMessageId(), true}, next(t, b.resolves))
	require.Equal(t, resolved{"p-trade", "trade", h.GetMessageId(), false}, next(t, b.resolves))
	none(t, b.resolves)
	none(t, b.publishes)
	none(t, b.acks)
	none(t, b.resolves)
}

// TestCompatTxAckOfAnotherGroupRefused: a connection decides only for its
// own group (issue #16). A TxAck whose header names another group never
// reaches the broker; one the broker refuses (the message is another
// group's) changes nothing either. Neither gets a reply (a KiteQ client
// expects none): both are counted.
func TestCompatTxAckOfAnotherGroupRefused(t *testing.T) {
	b := newFakeBroker()
	b.onResolve = func(_, _, id string) error {
		if id == "other" {
			return kqerr.New(kqerr.Forbidden, nil, "not yours")
		}
		return nil
	}
	srv := startServerWith(t, b, nil)
	c, _ := joinedClient(t, b, srv.Addr().String(), "p-trade")
	h := compattest.Header(compattest.NewID(), "trade", "pay", "s-trade")
	h.Commit = proto.Bool(false)
	c.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
	c.SendWith(7, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxRollback), Feedback: proto.String("")})
	own := compattest.Header("other", "trade", "pay", "p-trade")
	c.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: own, Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
	c.Heartbeat(9) // the next frame is the heartbeat's echo: no TxAck reply came first
	require.Equal(t, resolved{"p-trade", "trade", "other", true}, next(t, b.resolves), "only the TxAck naming its own group reaches the broker")
	none(t, b.resolves)
	require.Eventually(t, func() bool { return srv.TxAcksRefused() == 3 }, 5*time.Second, 10*time.Millisecond)
}

func TestCompatCheckGoesToThePublishingGroup(t *testing.T) {
	b := newFakeBroker()
	srv, err := compat.New(compat.Config{Addr: "127.0.0.1:0", Logger: testLogger(t)}, b)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	m := &store.Message{Topic: "trade", ID: compattest.NewID(), MessageType: "pay", Group: "p-trade", BodyType: store.BodyBytes,
		Body: []byte("x"), Created: time.Unix(1700000000, 0), Expires: time.Now().Add(time.Hour), DeliverLimit: 100, Prepared: true}
	require.ErrorIs(t, srv.Check(m), compat.ErrNoProducer)

	other, _ := joinedClient(t, b, srv.Addr().String(), "s-trade")
	prod, _ := joinedClient(t, b, srv.Addr().String(), "p-trade")
	require.NoError(t, srv.Check(m))
	f, msg := prod.Read()
	require.Equal(t, wire.CmdTxAck, f.Cmd)
	require.GreaterOrEqual(t, f.Opaque, uint32(0x80000000))
	tx := msg.(*wire.TxACKPacket)
	require.Equal(t, int32(wire.TxUnknown), tx.GetStatus())
	require.Equal(t, "Server Check", tx.GetFeedback())
	require.Equal(t, m.ID, tx.GetHeader().GetMessageId())
	require.False(t, tx.GetHeader().GetCommit())
	other.ExpectSilence(100 * time.Millisecond)

	// The producer's answer, with our opaque, resolves the message.
	prod.SendWith(f.Opaque, wire.CmdTxAck, &wire.TxACKPacket{Header: tx.GetHeader(), Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
	require.Equal(t, resolved{"p-trade", "trade", m.ID, true}, next(t, b.resolves))
}

func TestCompatUnknownCommandsIgnoredAfterHandshake(t *testing.T) {
	b := newFakeBroker()
	c, _ := joinedClient(t, b, startServer(t, b, nil), "s-trade")
	require.NoError(t, c.WriteRaw(append(header(3, 0x7f, 3), 1, 2, 3)))
	c.Send(wire.CmdMessageStoreAck, &wire.MessageStoreAck{MessageId: proto.String("x"), Status: proto.Bool(true), Feedback: proto.String("")})
	c.Heartbeat(1)
}

func TestCompatServerLifecycle(t *testing.T) {
	b := newFakeBroker()
	srv, err := compat.New(compat.Config{Addr: "127.0.0.1:0", Logger: testLogger(t)}, b)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	c, _ := joinedClient(t, b, srv.Addr().String(), "s-trade")
	require.Error(t, srv.Run(ctx), "Run twice")

	cancel()
	require.NoError(t, <-done, "Run returns once every goroutine ended")
	require.Empty(t, c.ExpectClosed())
	next(t, b.left)
	require.NoError(t, srv.Close(), "Close after Run is a no-op")
	require.Error(t, srv.Run(context.Background()), "Run after Close")

	// Close without Run releases the listener.
	srv2, err := compat.New(compat.Config{Addr: "127.0.0.1:0"}, b)
	require.NoError(t, err)
	require.NoError(t, srv2.Close())
	require.NoError(t, srv2.Close())

	_, err = compat.New(compat.Config{Addr: "127.0.0.1:0", WriteQueue: -1}, b)
	require.Error(t, err)
	_, err = compat.New(compat.Config{Addr: "127.0.0.1:0"}, nil)
	require.Error(t, err)
}

func TestCompatCloseWhileRunning(t *testing.T) {
	b := newFakeBroker()
	srv, err := compat.New(compat.Config{Addr: "127.0.0.1:0", Logger: testLogger(t)}, b)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	c, _ := joinedClient(t, b, srv.Addr().String(), "s-trade")
	require.NoError(t, srv.Close())
	require.NoError(t, <-done)
	require.Empty(t, c.ExpectClosed())
}
