package compat_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/store"
)

// nopBroker accepts everything and records nothing, for inputs by the
// thousand.
type nopBroker struct{}

func (nopBroker) Publish(_ *store.Message, _ compat.Mode, done func(compat.Result, error)) {
	done(compat.Result{Seq: 1}, nil)
}
func (nopBroker) Join(string, string, time.Duration, compat.Endpoint) string    { return "c" }
func (nopBroker) Leave(string, string)                                          {}
func (nopBroker) ResolveTx(context.Context, string, string, string, bool) error { return nil }

func (nopBroker) Ack(_ compat.Ack, done func(error)) { done(errors.New("unknown delivery")) }

func frame(t testing.TB, opaque uint32, cmd wire.Cmd, m proto.Message) []byte {
	body, err := wire.Encode(cmd, m)
	require.NoError(t, err)
	return wire.AppendFrame(nil, wire.Frame{Opaque: opaque, Cmd: cmd, Body: body})
}

func connMeta(t testing.TB) []byte {
	return frame(t, 1, wire.CmdConnMeta, &wire.ConnMeta{GroupId: proto.String("g"), SecretKey: proto.String(""), WarmingupSec: proto.Int32(0)})
}

// seeds are inputs worth starting from: every command valid, and the
// classic ways to be wrong.
func seeds(t testing.TB) [][]byte {
	h := compattest.Header("26c03f00665862591f696a980b5a6c4f", "trade", "pay-succ", "p-trade")
	hs := proto.Clone(h).(*wire.Header)
	hs.Snappy = proto.Bool(true)
	packed, _ := wire.EncodeBody(wire.CmdStringMessage, []byte("hello hello hello hello"))
	return [][]byte{
		nil,
		connMeta(t),
		frame(t, 2, wire.CmdHeartbeat, &wire.HeartBeat{Version: proto.Int64(1700000000)}),
		frame(t, 3, wire.CmdBytesMessage, &wire.BytesMessage{Header: h, Body: []byte("x")}),
		frame(t, 4, wire.CmdStringMessage, &wire.StringMessage{Header: hs, Body: proto.String(string(packed))}),
		frame(t, 5, wire.CmdStringMessage, &wire.StringMessage{Header: hs, Body: proto.String("!!not base64")}),
		frame(t, 0x80000000, wire.CmdDeliverAck, &wire.DeliverAck{MessageId: h.MessageId, Topic: h.Topic, MessageType: h.MessageType, GroupId: h.GroupId, Status: proto.Bool(true)}),
		frame(t, 0, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(1), Feedback: proto.String("")}),
		frame(t, 6, wire.CmdMessageStoreAck, &wire.MessageStoreAck{MessageId: h.MessageId, Status: proto.Bool(true), Feedback: proto.String("")}),
		append(header(7, wire.CmdBytesMessage, -1), 1, 2, 3),
		header(8, wire.CmdBytesMessage, wire.MaxBodyLen+1),
		append(header(9, 0x7f, 1), 0),
		append(header(10, wire.CmdConnMeta, 4), 0x0a, 0x01, 'g'),
		{0, 0, 0, 1, 2, 0},
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
	}
}

// feed writes data (after a handshake if asked) on a fresh connection,
// half-closes it, and requires the server to close its side: whatever the
// input, the session must end cleanly and never hang or crash the server.
func feed(t testing.TB, addr string, handshake bool, data []byte) {
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	if handshake {
		_, err = conn.Write(connMeta(t))
		require.NoError(t, err)
	}
	_, _ = conn.Write(data) // the server may already have closed
	_ = conn.(*net.TCPConn).CloseWrite()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.Copy(io.Discard, conn)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server did not close the connection")
}

func quietServer(t testing.TB) string {
	return startServer(t, nopBroker{}, func(c *compat.Config) { c.Logger = slog.New(slog.DiscardHandler) })
}

func FuzzCompatSession(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	addr := quietServer(f)
	f.Fuzz(func(t *testing.T, data []byte, handshake bool) {
		feed(t, addr, handshake, data)
	})
}

func TestCompatGarbageNeverPanics(t *testing.T) {
	addr := quietServer(t)
	for _, s := range seeds(t) {
		feed(t, addr, false, s)
		feed(t, addr, true, s)
		feed(t, addr, true, append(append([]byte(nil), s...), s...))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		data := make([]byte, rnd.IntN(256))
		for j := range data {
			data[j] = byte(rnd.Uint32())
		}
		if rnd.IntN(2) == 0 && len(data) >= wire.HeaderLen {
			// A plausible header: a real command and a length that fits.
			cmds := []wire.Cmd{wire.CmdHeartbeat, wire.CmdConnMeta, wire.CmdDeliverAck, wire.CmdTxAck, wire.CmdBytesMessage, wire.CmdStringMessage}
			copy(data, header(uint32(i), cmds[rnd.IntN(len(cmds))], int32(len(data)-wire.HeaderLen)))
		}
		feed(t, addr, rnd.IntN(2) == 0, data)
	}
	// The server still serves.
	c := compattest.Dial(t, addr)
	c.MustHandshake("s-trade", "", 0)
	c.Heartbeat(1)
}
