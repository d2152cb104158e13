package bridge

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests.
const waitTimeout = 2 * time.Second

// testWriter sends log lines to t.Log until the test is over; nats-server
// goroutines may still log while the test's cleanups run.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func newTestLogger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	// Registered first, so it runs last.
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startServer starts a bridge on a random port; edit may change the config.
func startServer(t testing.TB, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{Port: randomPort, Logger: newTestLogger(t)}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// dial connects a nats.go client over TCP.
func dial(t testing.TB, s *Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), append(opts, nats.MaxReconnects(0))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, waitTimeout, 5*time.Millisecond)
}

// rawClient speaks the NATS text protocol over a bare TCP connection, for
// what nats.go will not do: never answer pings, reset the connection.
type rawClient struct {
	conn *net.TCPConn
	r    *bufio.Reader
}

// dialRaw connects and completes CONNECT/PING/PONG as user (may be "").
func dialRaw(t testing.TB, s *Server, user string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	rc := &rawClient{conn: conn.(*net.TCPConn), r: bufio.NewReader(conn)}
	t.Cleanup(func() { _ = rc.conn.Close() })
	require.NoError(t, rc.conn.SetDeadline(time.Now().Add(waitTimeout)))
	require.True(t, strings.HasPrefix(rc.line(t), "INFO "))
	rc.send(t, fmt.Sprintf("CONNECT {\"verbose\":false,\"user\":%q,\"pass\":\"x\",\"name\":\"raw\"}\r\nPING\r\n", user))
	require.Equal(t, "PONG", rc.line(t))
	return rc
}

func (rc *rawClient) send(t testing.TB, s string) {
	t.Helper()
	_, err := rc.conn.Write([]byte(s))
	require.NoError(t, err)
}

func (rc *rawClient) line(t testing.TB) string {
	t.Helper()
	l, err := rc.r.ReadString('\n')
	require.NoError(t, err)
	return strings.TrimRight(l, "\r\n")
}

// reset closes the connection with a TCP RST, like a killed process.
func (rc *rawClient) reset(t testing.TB) {
	t.Helper()
	require.NoError(t, rc.conn.SetLinger(0))
	require.NoError(t, rc.conn.Close())
}

func TestBridgeConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	require.Equal(t, "127.0.0.1", c.Host)
	require.Equal(t, 4222, c.Port)
	require.Equal(t, int32(4<<20), c.MaxPayload)
	require.Equal(t, 2*time.Second, c.PingInterval)
	require.Equal(t, 2, c.MaxPingsOut)
	require.Equal(t, "kitenats", c.ServerName)
	require.Nil(t, c.Authorizer)
	require.Zero(t, c.ClusterPort)
	require.Equal(t, "kitenats", c.ClusterName)
	require.Equal(t, c.Host, c.ClusterHost)
	require.NoError(t, c.Validate())
	require.NoError(t, Config{}.Validate(), "zero fields take defaults")
}

func TestBridgeConfigInvalid(t *testing.T) {
	tests := map[string]Config{
		"port too big":        {Port: 65536},
		"port below -1":       {Port: -2},
		"negative payload":    {MaxPayload: -1},
		"payload too big":     {MaxPayload: 64<<20 + 1},
		"ping interval tiny":  {PingInterval: time.Microsecond},
		"negative pings out":  {MaxPingsOut: -1},
		"cluster port":        {ClusterPort: 70000},
		"routes w/o cluster":  {Routes: []string{"nats-route://127.0.0.1:6222"}},
		"route without host":  {ClusterPort: -1, Routes: []string{"nats-route://"}},
		"route not a url":     {ClusterPort: -1, Routes: []string{"::%zz"}},
		"negative ping inter": {PingInterval: -time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			err := cfg.Validate()
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "bridge: "), err.Error())
			_, err = New(cfg)
			require.Error(t, err)
		})
	}
}

func TestBridgeLifecycle(t *testing.T) {
	s, err := New(Config{Port: randomPort, Logger: newTestLogger(t)})
	require.NoError(t, err)
	_, err = s.Connect("early")
	require.ErrorIs(t, err, ErrNotStarted)
	_, err = s.Holders("a")
	require.ErrorIs(t, err, ErrNotStarted)
	require.ErrorIs(t, s.Events(t.Context(), func(Event) {}), ErrNotStarted)
	require.Nil(t, s.Addr())
	require.Empty(t, s.ClientURL())

	require.NoError(t, s.Start())
	require.ErrorIs(t, s.Start(), ErrStarted)
	port := s.Addr().(*net.TCPAddr).Port
	require.Equal(t, fmt.Sprintf("nats://127.0.0.1:%d", port), s.ClientURL())
	require.Nil(t, s.ClusterAddr())
	nc, err := s.Connect("internal")
	require.NoError(t, err)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	require.True(t, nc.IsClosed(), "Close closes Connect's conns")
	require.ErrorIs(t, s.Start(), ErrClosed)
	_, err = s.Connect("late")
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Holders("a")
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.Events(t.Context(), func(Event) {}), ErrClosed)
	require.Empty(t, s.ClientURL())
	_, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.MaxReconnects(0))
	require.Error(t, err, "listener is gone")
}

func TestBridgeCloseConcurrent(t *testing.T) {
	s := startServer(t, nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { require.NoError(t, s.Close()) })
	}
	wg.Wait()
	require.Nil(t, s.Addr())
}

func TestBridgeCloseWithoutStart(t *testing.T) {
	s, err := New(Config{Port: randomPort})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Start(), ErrClosed)
}

func TestBridgeStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	s, err := New(Config{Port: l.Addr().(*net.TCPAddr).Port, Logger: newTestLogger(t)})
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	start := time.Now()
	err = s.Start()
	require.Error(t, err)
	require.Contains(t, err.Error(), "bridge: nats-server failed to start")
	require.Less(t, time.Since(start), time.Second, "a listen failure is reported without waiting for the timeout")
}

func TestBridgePubSubOverTCP(t *testing.T) {
	s := startServer(t, nil)
	pub, sub := dial(t, s), dial(t, s)
	ss, err := sub.SubscribeSync("greet.>")
	require.NoError(t, err)
	require.NoError(t, sub.Flush())

	m := nats.NewMsg("greet.world")
	m.Header.Set("K", "v")
	m.Data = []byte("hello")
	require.NoError(t, pub.PublishMsg(m))
	got, err := ss.NextMsg(waitTimeout)
	require.NoError(t, err)
	require.Equal(t, "greet.world", got.Subject)
	require.Equal(t, "hello", string(got.Data))
	require.Equal(t, "v", got.Header.Get("K"))
}

func TestBridgeConnectInProcess(t *testing.T) {
	var calls int
	var mu sync.Mutex
	denyAll := AuthorizerFunc(func(string, string, ConnInfo) (*Permissions, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil, fmt.Errorf("nobody")
	})
	s := startServer(t, func(c *Config) { c.Authorizer = denyAll })

	a, err := s.Connect("a")
	require.NoError(t, err)
	b, err := s.Connect("b", nats.UserInfo("intruder", "x"))
	require.NoError(t, err, "the bridge's credentials win over the caller's")
	require.Equal(t, "pipe", a.ConnectedAddr(), "in-process, no TCP")

	// Full permissions: $KQ and _INBOX subjects, request/reply.
	_, err = b.Subscribe("$KQ.API.>", func(m *nats.Msg) { _ = m.Respond(append([]byte("re:"), m.Data...)) })
	require.NoError(t, err)
	require.NoError(t, b.Flush())
	reply, err := a.Request("$KQ.API.STAT", []byte("x"), waitTimeout)
	require.NoError(t, err)
	require.Equal(t, "re:x", string(reply.Data))

	id, err := s.ConnID(a)
	require.NoError(t, err)
	require.NotZero(t, id)
	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, calls, "internal conns never reach the Authorizer")
}

func TestBridgeHolders(t *testing.T) {
	s := startServer(t, nil)
	const subj = "$KQ.DLV.g.x1"
	holder, queue, wild := dial(t, s), dial(t, s), dial(t, s)
	internal, err := s.Connect("internal")
	require.NoError(t, err)

	sub1, err := holder.SubscribeSync(subj)
	require.NoError(t, err)
	sub2, err := holder.SubscribeSync(subj) // twice on one conn: one id
	require.NoError(t, err)
	_, err = queue.QueueSubscribeSync(subj, "q")
	require.NoError(t, err)
	_, err = wild.SubscribeSync("$KQ.DLV.g.*")
	require.NoError(t, err)
	_, err = internal.SubscribeSync(subj)
	require.NoError(t, err)
	for _, nc := range []*nats.Conn{holder, queue, wild, internal} {
		require.NoError(t, nc.Flush())
	}

	holderID, err := s.ConnID(holder)
	require.NoError(t, err)
	wildID, err := s.ConnID(wild)
	require.NoError(t, err)

	ids, err := s.Holders(subj)
	require.NoError(t, err)
	require.Equal(t, []uint64{holderID}, ids)
	ids, err = s.Holders("$KQ.DLV.g.*")
	require.NoError(t, err)
	require.Equal(t, []uint64{wildID}, ids, "wildcards compare as text")
	ids, err = s.Holders("$KQ.DLV.g.nobody")
	require.NoError(t, err)
	require.Empty(t, ids)
	_, err = s.Holders("")
	require.Error(t, err)

	require.NoError(t, sub1.Unsubscribe())
	require.NoError(t, sub2.Unsubscribe())
	require.NoError(t, holder.Flush())
	ids, err = s.Holders(subj)
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestBridgeMaxPayload(t *testing.T) {
	const limit = 1024
	s := startServer(t, func(c *Config) { c.MaxPayload = limit })
	nc := dial(t, s)
	require.Equal(t, int64(limit), nc.MaxPayload())
	require.NoError(t, nc.Publish("big", make([]byte, limit-64)))
	require.ErrorIs(t, nc.Publish("big", make([]byte, limit+1)), nats.ErrMaxPayload)

	// The server enforces it too, for clients that do not check.
	rc := dialRaw(t, s, "")
	rc.send(t, fmt.Sprintf("PUB big %d\r\n", limit+1))
	require.Contains(t, rc.line(t), "Maximum Payload Violation")
}

// recordLogs is a slog handler that keeps every record's message.
type recordLogs struct {
	mu   sync.Mutex
	msgs map[slog.Level][]string
}

func (h *recordLogs) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLogs) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordLogs) WithGroup(string) slog.Handler            { return h }
func (h *recordLogs) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Level] = append(h.msgs[r.Level], r.Message)
	return nil
}

func (h *recordLogs) has(level slog.Level, substr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs[level] {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

func TestBridgeLogsGoToSlog(t *testing.T) {
	h := &recordLogs{msgs: map[slog.Level][]string{}}
	s := startServer(t, func(c *Config) { c.Logger = slog.New(h) })
	require.True(t, h.has(slog.LevelInfo, "Server is ready"))
	_ = dial(t, s)
	waitFor(t, func() bool { return h.has(slog.LevelDebug, "Client connection created") })

	a := &logAdapter{log: slog.New(h)}
	a.Warnf("w %d", 1)
	a.Errorf("e %d", 2)
	a.Tracef("t %d", 3)
	a.Fatalf("f %d", 4)
	require.True(t, h.has(slog.LevelWarn, "w 1"))
	require.True(t, h.has(slog.LevelError, "e 2"))
	require.True(t, h.has(slog.LevelDebug, "t 3"))
	require.True(t, h.has(slog.LevelError, "f 4"))
	require.Equal(t, "f 4", a.lastFatal())
}

// TestBridgeNoSublistCache pins that the server keeps no subject-match
// cache: publishes on many distinct subjects (acks, replies) leave none.
func TestBridgeNoSublistCache(t *testing.T) {
	s := startServer(t, nil)
	pub, sub := dial(t, s), dial(t, s)
	ss, err := sub.SubscribeSync("ack.>")
	require.NoError(t, err)
	require.NoError(t, sub.Flush())
	for i := 0; i < 50; i++ {
		require.NoError(t, pub.Publish(fmt.Sprintf("ack.%d", i), nil))
	}
	require.NoError(t, pub.Flush())
	for i := 0; i < 50; i++ {
		_, err := ss.NextMsg(waitTimeout)
		require.NoError(t, err)
	}
	srv, err := s.running()
	require.NoError(t, err)
	sz, err := srv.Subsz(&server.SubszOptions{Account: srv.GlobalAccount().Name})
	require.NoError(t, err)
	require.NotZero(t, sz.NumMatches, "the publishes were matched")
	require.Zero(t, sz.NumCache, "subject-match cache entries")
}

// The broker's own connection dials the listener's address: on a loopback
// alias such as 127.0.0.2, 127.0.0.1 reaches nothing.
func TestBridgeConnectLoopbackDialsTheListener(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Host = "127.0.0.2" })
	require.Equal(t, "127.0.0.2", s.Addr().(*net.TCPAddr).IP.String())
	nc, err := s.ConnectLoopback("broker")
	require.NoError(t, err)
	require.Equal(t, s.Addr().String(), nc.ConnectedAddr())
	sub, err := nc.SubscribeSync("x")
	require.NoError(t, err)
	require.NoError(t, nc.Publish("x", []byte("over 127.0.0.2")))
	m, err := sub.NextMsg(waitTimeout)
	require.NoError(t, err)
	require.Equal(t, "over 127.0.0.2", string(m.Data))
}

// MaxConnections refuses the client over it, and frees the place when a
// client goes.
func TestMaxConnections(t *testing.T) {
	// The bridge's own system connection counts: two places for clients.
	s := startServer(t, func(c *Config) { c.MaxConnections = 3 })
	a := dial(t, s)
	dial(t, s)
	_, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(0))
	require.Error(t, err, "a third client") // "maximum connections exceeded", or the reset that follows it
	a.Close()
	waitFor(t, func() bool {
		nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
		}
		return err == nil
	})
}

// MaxConnectionsPerHost refuses the client over it from one address, and
// frees the place at the client's Disconnect event.
func TestMaxConnectionsPerHost(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxConnectionsPerHost = 2 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Events(ctx, func(Event) {}) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	a := dial(t, s)
	dial(t, s)
	_, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(0))
	require.Error(t, err, "a third client from 127.0.0.1")
	require.Equal(t, uint64(1), s.Refused())
	own, err := s.ConnectLoopback("own")
	require.NoError(t, err, "the bridge's own connections are not counted")
	own.Close()
	a.Close()
	waitFor(t, func() bool {
		nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
		}
		return err == nil
	})
}
