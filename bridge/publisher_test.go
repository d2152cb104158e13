package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPublisherDelivers: what a Publisher sends arrives at a real nats.go
// subscriber as sent, headers (several values of a key too), reply and
// body, in order; Flush waits for the server.
func TestPublisherDelivers(t *testing.T) {
	s := startServer(t, nil)
	nc := dial(t, s)
	sub, err := nc.SubscribeSync("out.>")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	p, err := s.ConnectPublisher("test-out")
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	hdr := []byte("NATS/1.0\r\nKq-Msg-Id: abc\r\nOrder: 1\r\nOrder: 2\r\n\r\n")
	require.NoError(t, p.Publish("out.a", "reply.here", hdr, []byte("body-a")))
	require.NoError(t, p.Publish("out.b", "", nil, []byte("body-b")))
	require.NoError(t, p.Publish("out.c", "r", nil, nil))
	require.NoError(t, p.Flush(5*time.Second))

	m, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "out.a", m.Subject)
	require.Equal(t, "reply.here", m.Reply)
	require.Equal(t, "body-a", string(m.Data))
	require.Equal(t, "abc", m.Header.Get("Kq-Msg-Id"))
	require.Equal(t, []string{"1", "2"}, m.Header.Values("Order"))
	m, err = sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "out.b", m.Subject)
	require.Empty(t, m.Reply)
	require.Empty(t, m.Header)
	require.Equal(t, "body-b", string(m.Data))
	m, err = sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "out.c", m.Subject)
	require.Empty(t, m.Data)
}

// TestPublisherRefusesOneMessage: a subject the protocol cannot carry or a
// message over max_payload is refused alone; the connection stays up.
func TestPublisherRefusesOneMessage(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxPayload = 1024 })
	nc := dial(t, s)
	sub, err := nc.SubscribeSync("ok")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	p, err := s.ConnectPublisher("test-out")
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()

	require.Error(t, p.Publish("bad subject", "", nil, nil))
	require.Error(t, p.Publish("ok", "bad\r\nreply", nil, nil))
	require.Error(t, p.Publish("", "", nil, nil))
	require.ErrorIs(t, p.Publish("ok", "", nil, make([]byte, 1025)), ErrMaxPayload)
	require.NoError(t, p.Publish("ok", "", nil, []byte("still up")))
	require.NoError(t, p.Flush(5*time.Second))
	m, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "still up", string(m.Data))
	require.NoError(t, p.Err())
}

// TestPublisherAnswersPings: an idle Publisher outlives several of the
// server's ping intervals (it answers every PING), and the server never
// reports it as a client (it is the internal user).
func TestPublisherAnswersPings(t *testing.T) {
	// Pings every 50 ms, a client gone after 3 unanswered: 500 ms is
	// several intervals, and a stall of 150 ms (a loaded CI machine) is
	// not mistaken for a dead publisher.
	s := startServer(t, func(c *Config) { c.PingInterval, c.MaxPingsOut = 50*time.Millisecond, 3 })
	p, err := s.ConnectPublisher("test-out")
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, p.Err())
	require.NoError(t, p.Flush(5*time.Second))
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Err(), ErrClosed)
	require.NoError(t, p.Close(), "idempotent")
	require.ErrorIs(t, p.Publish("x", "", nil, nil), ErrClosed)
}

// TestPublisherBrokenConnection: when the server goes away the error is
// sticky and says so; Close still returns.
func TestPublisherBrokenConnection(t *testing.T) {
	s := startServer(t, nil)
	p, err := s.ConnectPublisher("test-out")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Eventually(t, func() bool { return p.Err() != nil }, 5*time.Second, time.Millisecond)
	require.True(t, strings.Contains(p.Publish("x", "", nil, nil).Error(), "publisher"))
	require.NoError(t, p.Close())
}
