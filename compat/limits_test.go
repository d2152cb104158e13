package compat_test

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
)

// An idle connection, before or after its handshake, costs a few KiB of
// heap, not a write queue of WriteQueue frames (about 320 KiB each).
func TestCompatIdleConnectionsAreCheap(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, nil)
	const n = 200
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	conns := make([]*compattest.Client, 0, n)
	for range n {
		conns = append(conns, compattest.Dial(t, addr))
	}
	// A heartbeat answered proves each connection has its session.
	for i, c := range conns {
		c.Heartbeat(int64(i))
	}
	perConn := (heap() - before) / n
	t.Logf("heap per idle connection before its handshake: %d B", perConn)
	require.Less(t, perConn, uint64(16<<10))
	for _, c := range conns {
		c.Close()
	}
}

// Before the handshake a frame is at most 64 KiB: a header announcing the
// largest body closes the connection at once, instead of holding a 2 MiB
// buffer for the handshake timeout; after the handshake such a body is
// read as before.
func TestCompatBigFrameBeforeHandshake(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, nil)
	c := compattest.Dial(t, addr)
	start := time.Now()
	require.NoError(t, c.WriteRaw(header(1, wire.CmdBytesMessage, wire.MaxBodyLen)))
	require.Empty(t, c.ExpectClosed())
	require.Less(t, time.Since(start), 5*time.Second, "closed at once, not at the handshake timeout")

	joined, _ := joinedClient(t, b, addr, "s-big")
	body := make([]byte, 100<<10) // not protobuf: the connection closes, but only after reading it
	require.NoError(t, joined.WriteRaw(append(header(2, wire.CmdBytesMessage, int32(len(body))), body...)))
	require.Empty(t, joined.ExpectClosed())
	require.Equal(t, "s-big", next(t, b.left)[:len("s-big")])
}

// MaxConns and MaxConnsPerHost close connections over them at accept, and
// count them; a closed connection frees its place.
func TestCompatConnectionLimits(t *testing.T) {
	b := newFakeBroker()
	cfg := compat.Config{Addr: "127.0.0.1:0", Logger: testLogger(t), MaxConns: 3, MaxConnsPerHost: 2}
	srv, err := compat.New(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	addr := srv.Addr().String()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	dialFrom := func(ip string) *compattest.Client {
		// The listener is on 127.0.0.1; the source address makes the host.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		require.NoError(t, err)
		return compattest.Wrap(t, conn)
	}
	a1, a2 := dialFrom("127.0.0.1"), dialFrom("127.0.0.1")
	a1.Heartbeat(1)
	a2.Heartbeat(2)
	a3 := dialFrom("127.0.0.1")
	require.Empty(t, a3.ExpectClosed(), "a third from one host")
	other := dialFrom("127.0.0.2")
	other.Heartbeat(3)
	fourth := dialFrom("127.0.0.3")
	require.Empty(t, fourth.ExpectClosed(), "a fourth in all")
	require.Equal(t, compat.Stats{Connections: 3, Accepted: 3, Refused: 2}, srv.Stats())

	a1.Close()
	require.Eventually(t, func() bool { return srv.Stats().Connections == 2 }, 5*time.Second, time.Millisecond)
	again := dialFrom("127.0.0.1")
	again.Heartbeat(4)
}
