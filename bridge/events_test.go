package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// eventBuffer is the recorder's channel size; tests produce a few events.
const eventBuffer = 64

// recorder runs Events on its own goroutine; the test's cleanup stops it and
// waits for it.
type recorder struct {
	ch   chan Event
	errc chan error
}

func recordEvents(t *testing.T, s *Server) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{ch: make(chan Event, eventBuffer), errc: make(chan error, 1)}
	go func() { r.errc <- s.Events(ctx, func(ev Event) { r.ch <- ev }) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-r.errc)
	})
	return r
}

func (r *recorder) next(t *testing.T) Event {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no event")
		return Event{}
	}
}

func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-r.ch:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

func TestBridgeEventKindString(t *testing.T) {
	require.Equal(t, "connect", Connect.String())
	require.Equal(t, "disconnect", Disconnect.String())
	require.Equal(t, "EventKind(9)", EventKind(9).String())
}

func TestBridgeEventsConnectDisconnect(t *testing.T) {
	s := startServer(t, nil)
	internal, err := s.Connect("internal")
	require.NoError(t, err)
	r := recordEvents(t, s)

	nc := dial(t, s, nats.UserInfo("g1", "x"), nats.Name("consumer-1"))
	id, err := s.ConnID(nc)
	require.NoError(t, err)
	ev := r.next(t)
	require.Equal(t, Event{Kind: Connect, ConnID: id, User: "g1", Remote: "127.0.0.1", Name: "consumer-1"}, ev)

	nc.Close()
	ev = r.next(t)
	require.Equal(t, Disconnect, ev.Kind)
	require.Equal(t, id, ev.ConnID)
	require.Equal(t, "g1", ev.User)
	require.NotEmpty(t, ev.Reason) // "Client Closed" or "Read Error", by timing

	internal.Close()
	r.none(t, 50*time.Millisecond)
}

func TestBridgeEventsAbruptClose(t *testing.T) {
	s := startServer(t, nil)
	r := recordEvents(t, s)
	rc := dialRaw(t, s, "killed")
	ev := r.next(t)
	require.Equal(t, Connect, ev.Kind)
	require.Equal(t, "killed", ev.User)

	rc.reset(t)
	gone := r.next(t)
	require.Equal(t, Disconnect, gone.Kind)
	require.Equal(t, ev.ConnID, gone.ConnID)
}

func TestBridgeEventsPingTimeout(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.PingInterval = 20 * time.Millisecond
		c.MaxPingsOut = 1
	})
	r := recordEvents(t, s)
	start := time.Now()
	_ = dialRaw(t, s, "silent") // never answers the server's pings
	ev := r.next(t)
	require.Equal(t, Connect, ev.Kind)

	gone := r.next(t)
	require.Equal(t, Disconnect, gone.Kind)
	require.Equal(t, ev.ConnID, gone.ConnID)
	require.Equal(t, "Stale Connection", gone.Reason)
	require.Less(t, time.Since(start), time.Second)
}

func TestBridgeEventsRefusedClientNotReported(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Authorizer = groupAuth() })
	r := recordEvents(t, s)
	_, err := nats.Connect(s.ClientURL(), nats.UserInfo("g1", "wrong"), nats.MaxReconnects(0))
	require.ErrorIs(t, err, nats.ErrAuthorization)

	nc := dial(t, s, nats.UserInfo("g1", "s1"))
	id, err := s.ConnID(nc)
	require.NoError(t, err)
	ev := r.next(t)
	require.Equal(t, Connect, ev.Kind)
	require.Equal(t, id, ev.ConnID, "the refused attempt produced no event")
	r.none(t, 50*time.Millisecond)
}

func TestBridgeEventsRecordedFromStart(t *testing.T) {
	s := startServer(t, nil)
	early := dial(t, s, nats.UserInfo("early", "x"))
	early.Close()

	r := recordEvents(t, s)
	require.Equal(t, Connect, r.next(t).Kind)
	require.Equal(t, Disconnect, r.next(t).Kind)
}

func TestBridgeEventsResumeAcrossCalls(t *testing.T) {
	s := startServer(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var first []Event
	nc := dial(t, s, nats.UserInfo("u", "x"))
	require.NoError(t, s.Events(ctx, func(ev Event) {
		first = append(first, ev)
		cancel()
	}))
	require.Len(t, first, 1)

	nc.Close()
	r := recordEvents(t, s)
	ev := r.next(t)
	require.Equal(t, Disconnect, ev.Kind)
	require.Equal(t, first[0].ConnID, ev.ConnID, "the second call continues where the first stopped")
}

func TestBridgeEventsBusy(t *testing.T) {
	s := startServer(t, nil)
	r := recordEvents(t, s)
	_ = dial(t, s)
	r.next(t) // the recorder is running
	require.ErrorIs(t, s.Events(t.Context(), func(Event) {}), ErrEventsBusy)
}

func TestBridgeEventsEndOnClose(t *testing.T) {
	s := startServer(t, nil)
	running := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- s.Events(context.Background(), func(Event) {
			select {
			case running <- struct{}{}:
			default:
			}
		})
	}()
	_ = dial(t, s)
	select {
	case <-running:
	case <-time.After(waitTimeout):
		t.Fatal("Events not running")
	}
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrClosed)
	case <-time.After(waitTimeout):
		t.Fatal("Events did not return on Close")
	}
}

func TestBridgeClusterRoutes(t *testing.T) {
	a := startServer(t, func(c *Config) {
		c.ServerName = "a"
		c.ClusterPort = randomPort
	})
	b := startServer(t, func(c *Config) {
		c.ServerName = "b"
		c.ClusterPort = randomPort
		c.Routes = []string{"nats-route://" + a.ClusterAddr().String()}
	})
	srvA, err := a.running()
	require.NoError(t, err)
	waitFor(t, func() bool { return srvA.NumRoutes() > 0 })
	ra := recordEvents(t, a)

	// A client of b answers a client of a across the route.
	onB := dial(t, b, nats.UserInfo("on-b", "x"))
	_, err = onB.Subscribe("svc.where", func(m *nats.Msg) { _ = m.Respond([]byte("b")) })
	require.NoError(t, err)
	require.NoError(t, onB.Flush())
	onA := dial(t, a, nats.UserInfo("on-a", "x"))
	waitFor(t, func() bool {
		m, err := onA.Request("svc.where", nil, 100*time.Millisecond)
		return err == nil && string(m.Data) == "b"
	})

	// a reports only its own client; b's subscription is not a's holder.
	ev := ra.next(t)
	require.Equal(t, "on-a", ev.User)
	ra.none(t, 50*time.Millisecond)
	ids, err := a.Holders("svc.where")
	require.NoError(t, err)
	require.Empty(t, ids)
}
