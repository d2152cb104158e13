package zk

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/registry/registrytest"
)

// newFakeRegistry returns a Registry on an in-memory ZooKeeper.
func newFakeRegistry(t *testing.T, cfg Config) (*Registry, *fakeZK) {
	t.Helper()
	f := newFakeZK()
	if cfg.Logger == nil {
		cfg.Logger, _ = newTestLogger(t)
	}
	r, err := newRegistry(ctxT(t), cfg, f.dial)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, f
}

func TestRegistryZKFakeConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, _ := newFakeRegistry(t, Config{})
		return r
	})
}

func TestRegistryZKFakeLayout(t *testing.T) {
	r, f := newFakeRegistry(t, Config{})
	ctx := ctxT(t)
	_, _, ok := f.node("/kiteq")
	require.True(t, ok, "New creates /kiteq")

	require.NoError(t, r.PublishServer(ctx, "10.0.0.1:13800", []string{"trade", "user"}))
	sid := f.SessionID()
	for _, p := range []string{"/kiteq/server/trade/10.0.0.1:13800", "/kiteq/server/user/10.0.0.1:13800", "/kiteq/alive_servers/10.0.0.1:13800"} {
		_, owner, ok := f.node(p)
		require.True(t, ok, p)
		require.Equal(t, sid, owner, "%s is ephemeral", p)
	}
	for _, p := range []string{"/kiteq/all_servers/10.0.0.1:13800", "/kiteq/pub/trade", "/kiteq/sub/trade", "/kiteq/pub/user", "/kiteq/sub/user"} {
		_, owner, ok := f.node(p)
		require.True(t, ok, p)
		require.Zero(t, owner, "%s is persistent", p)
	}

	bs := []registry.Binding{
		{Topic: "trade", MessageType: "pay-200", BindType: registry.Direct, Watermark: 1000, Persistent: true},
		{Topic: "trade", MessageType: `pay-\d+`, BindType: registry.Regx},
		{Topic: "user", MessageType: "ignored", BindType: registry.Fanout, Watermark: -1},
	}
	// -1 is no valid watermark for a publish; KiteQ clients may write it.
	require.Error(t, r.PublishBindings(ctx, "s-trade-a", bs))
	bs[2].Watermark = 0
	require.NoError(t, r.PublishBindings(ctx, "s-trade-a", bs))
	data, owner, ok := f.node("/kiteq/sub/trade/s-trade-a-bind")
	require.True(t, ok)
	require.Zero(t, owner, "bind nodes are persistent")
	require.Equal(t, `[{"groupId":"s-trade-a","topic":"trade","messageType":"pay-200","bindType":0,"version":"1.0.0","watermark":1000,"persistent":true},`+
		`{"groupId":"s-trade-a","topic":"trade","messageType":"pay-\\d+","bindType":1,"version":"1.0.0","watermark":0,"persistent":false}]`, string(data))
	data, _, ok = f.node("/kiteq/sub/user/s-trade-a-bind")
	require.True(t, ok)
	require.JSONEq(t, `[{"groupId":"s-trade-a","topic":"user","messageType":"*","bindType":2,"version":"1.0.0","watermark":0,"persistent":false}]`, string(data))

	// Publishing only trade deletes the user node; the topic node stays.
	require.NoError(t, r.PublishBindings(ctx, "s-trade-a", bs[:1]))
	_, _, ok = f.node("/kiteq/sub/user/s-trade-a-bind")
	require.False(t, ok)
	_, _, ok = f.node("/kiteq/sub/user")
	require.True(t, ok)

	// Unpublish one topic, then the rest: alive_servers goes, all_servers stays.
	require.NoError(t, r.UnpublishServer(ctx, "10.0.0.1:13800", []string{"trade"}))
	_, _, ok = f.node("/kiteq/server/trade/10.0.0.1:13800")
	require.False(t, ok)
	_, _, ok = f.node("/kiteq/alive_servers/10.0.0.1:13800")
	require.True(t, ok, "still advertised for user")
	require.NoError(t, r.UnpublishServer(ctx, "10.0.0.1:13800", nil))
	for p, want := range map[string]bool{"/kiteq/server/user/10.0.0.1:13800": false, "/kiteq/alive_servers/10.0.0.1:13800": false, "/kiteq/all_servers/10.0.0.1:13800": true} {
		_, _, ok = f.node(p)
		require.Equal(t, want, ok, p)
	}
}

// TestRegistryZKFakeReplacesForeignEphemeral: a server node left by an older
// session (the broker restarted within the session timeout) is replaced,
// so it does not vanish when that session expires.
func TestRegistryZKFakeReplacesForeignEphemeral(t *testing.T) {
	r, f := newFakeRegistry(t, Config{})
	f.mu.Lock()
	f.nodes["/kiteq/server"] = &fakeNode{}
	f.nodes["/kiteq/server/trade"] = &fakeNode{}
	f.nodes["/kiteq/server/trade/h:1"] = &fakeNode{owner: 999}
	f.mu.Unlock()
	require.NoError(t, r.PublishServer(ctxT(t), "h:1", []string{"trade"}))
	_, owner, ok := f.node("/kiteq/server/trade/h:1")
	require.True(t, ok)
	require.Equal(t, f.SessionID(), owner)
}

// TestRegistryZKFakeKiteQClientWrites: bindings written by KiteQ clients
// (other sessions) reach the watch, whole topic every time; a malformed
// node is skipped with a warning; deleting one group keeps the others.
func TestRegistryZKFakeKiteQClientWrites(t *testing.T) {
	logger, logs := newTestLogger(t)
	r, f := newFakeRegistry(t, Config{Logger: logger})
	ch, err := r.Watch(ctxT(t), "trade")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)
	_, _, ok := f.node("/kiteq/sub/trade")
	require.True(t, ok, "Watch creates /kiteq/sub/{topic}")

	a := registry.Binding{GroupID: "s-a", Topic: "trade", MessageType: "pay", BindType: registry.Direct, Version: "1.0.0", Watermark: -1}
	b := registry.Binding{GroupID: "s-b", Topic: "trade", MessageType: "*", BindType: registry.Fanout, Version: "1.0.0", Persistent: true}
	put := func(group string, bs ...registry.Binding) {
		data, err := registry.MarshalBindings(bs)
		require.NoError(t, err)
		f.put("/kiteq/sub/trade/"+group+"-bind", data)
	}
	put("s-a", a)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a}})
	put("s-b", b)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a}, "s-b": {b}})

	// Data change of one group.
	a2 := a
	a2.MessageType = "refund"
	put("s-a", a, a2)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a, a2}, "s-b": {b}})

	// Malformed JSON: that group is left out, with a warning.
	f.put("/kiteq/sub/trade/s-a-bind", []byte(`[{"groupId":`))
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-b": {b}})
	require.Contains(t, logs.String(), "skipping unparsable bindings")
	require.Contains(t, logs.String(), "group=s-a")
	// Fixed again.
	put("s-a", a)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a}, "s-b": {b}})

	// Empty data and non-bind children are ignored.
	f.put("/kiteq/sub/trade/s-c-bind", nil)
	f.put("/kiteq/sub/trade/junk", []byte("x"))
	put("s-b", b, b)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a}, "s-b": {b, b}})

	// Deleting s-a never hides s-b.
	f.remove("/kiteq/sub/trade/s-a-bind")
	registrytest.Await(t, ch, func(ev registry.Event) bool {
		require.Equal(t, []registry.Binding{b, b}, ev.Bindings["s-b"])
		return len(ev.Bindings) == 1
	})

	// The topic node itself deleted and created again: the watch recovers.
	for _, c := range []string{"s-b-bind", "s-c-bind", "junk"} {
		f.remove("/kiteq/sub/trade/" + c)
	}
	f.remove("/kiteq/sub/trade")
	registrytest.AwaitState(t, ch, nil)
	put("s-a", a)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a}})
}

// TestRegistryZKFakeSessionExpiry: after an expiry the watch reports Err,
// the server nodes come back in the new session, the watch re-arms and
// sends the full state, including what changed while the session was gone.
func TestRegistryZKFakeSessionExpiry(t *testing.T) {
	r, f := newFakeRegistry(t, Config{})
	ctx := ctxT(t)
	require.NoError(t, r.PublishServer(ctx, "10.0.0.1:13800", []string{"trade"}))
	bind := registry.Binding{GroupID: "g", Topic: "trade", MessageType: "a", Version: "1.0.0"}
	require.NoError(t, r.PublishBindings(ctx, "g", []registry.Binding{bind}))
	ch, err := r.Watch(ctx, "trade")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"g": {bind}})
	old := f.SessionID()

	other := registry.Binding{GroupID: "h", Topic: "trade", MessageType: "b", Version: "1.0.0"}
	f.expire(func() {
		// Read the Err before the new session: a newer full state would
		// replace it in the one-slot channel (latest state wins).
		ev := registrytest.Await(t, ch, func(ev registry.Event) bool { return ev.Err != nil })
		require.ErrorIs(t, ev.Err, ErrSessionLost)
		require.ErrorIs(t, ev.Err, zk.ErrSessionExpired)
		require.Equal(t, "trade", ev.Topic)
		_, _, ok := f.node("/kiteq/server/trade/10.0.0.1:13800")
		require.False(t, ok, "ephemeral gone with the session")
		data, err := registry.MarshalBindings([]registry.Binding{other})
		require.NoError(t, err)
		f.put("/kiteq/sub/trade/h-bind", data)
	})
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"g": {bind}, "h": {other}})

	require.Eventually(t, func() bool {
		_, owner, ok := f.node("/kiteq/server/trade/10.0.0.1:13800")
		_, aliveOwner, aliveOK := f.node("/kiteq/alive_servers/10.0.0.1:13800")
		return ok && aliveOK && owner == f.SessionID() && aliveOwner == owner && owner != old
	}, registrytest.Timeout, 10*time.Millisecond, "server nodes re-created in the new session")

	// Watches are armed in the new session: a change still arrives.
	f.remove("/kiteq/sub/trade/h-bind")
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"g": {bind}})
}

// TestRegistryZKFakeLongDisconnect: no session for longer than the session
// timeout is reported as lost; the same session coming back sends the
// full state again. A short disconnection is invisible.
func TestRegistryZKFakeLongDisconnect(t *testing.T) {
	r, f := newFakeRegistry(t, Config{SessionTimeout: 200 * time.Millisecond})
	ch, err := r.Watch(ctxT(t), "trade")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)

	f.disconnect()
	f.reconnect()
	f.disconnect()
	ev := registrytest.Await(t, ch, func(registry.Event) bool { return true })
	require.ErrorIs(t, ev.Err, ErrSessionLost)
	require.NotErrorIs(t, ev.Err, zk.ErrSessionExpired)
	f.reconnect()
	registrytest.AwaitState(t, ch, nil)
}

// TestRegistryZKFakeRetry: a failed read is retried, and a failed
// re-publication after a new session too.
func TestRegistryZKFakeRetry(t *testing.T) {
	logger, logs := newTestLogger(t)
	r, f := newFakeRegistry(t, Config{RetryInterval: 10 * time.Millisecond, Logger: logger})
	require.NoError(t, r.PublishServer(ctxT(t), "10.0.0.1:13800", []string{"trade"}))
	f.mu.Lock()
	f.failNext = zk.ErrConnectionClosed
	f.mu.Unlock()
	ch, err := r.Watch(ctxT(t), "trade")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)
	require.Contains(t, logs.String(), "reading bindings failed; retrying")

	f.expire(func() {
		f.mu.Lock()
		f.failNext = errors.New("boom")
		f.mu.Unlock()
	})
	require.Eventually(t, func() bool {
		_, owner, ok := f.node("/kiteq/server/trade/10.0.0.1:13800")
		return ok && owner == f.SessionID()
	}, registrytest.Timeout, 10*time.Millisecond)
}

func TestRegistryZKFakeValidation(t *testing.T) {
	r, _ := newFakeRegistry(t, Config{})
	ctx := ctxT(t)
	for _, topic := range []string{"", "a/b", ".", ".."} {
		_, err := r.Watch(ctx, topic)
		require.Error(t, err, "topic %q", topic)
		require.Error(t, r.PublishServer(ctx, "h:1", []string{topic}), "topic %q", topic)
	}
	require.Error(t, r.PublishBindings(ctx, "a/b", nil))
	require.Error(t, r.PublishBindings(ctx, "g", []registry.Binding{{GroupID: "g", Topic: "a/b", MessageType: "x"}}))
	err := r.PublishServer(ctx, ":13800", []string{"trade"})
	require.ErrorContains(t, err, "no host")
	err = r.PublishServer(ctx, "0.0.0.0:13800", []string{"trade"})
	require.ErrorContains(t, err, "unspecified")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, r.PublishServer(cctx, "h:1", []string{"trade"}), context.Canceled)
	require.ErrorIs(t, r.PublishBindings(cctx, "g", []registry.Binding{{Topic: "t", MessageType: "x"}}), context.Canceled)

	require.NoError(t, r.Close())
	require.ErrorIs(t, r.PublishServer(ctx, "h:1", []string{"trade"}), ErrClosed)
	require.ErrorIs(t, r.UnpublishServer(ctx, "h:1", nil), ErrClosed)
	require.ErrorIs(t, r.PublishBindings(ctx, "g", nil), ErrClosed)
	_, err = r.Watch(ctx, "trade")
	require.ErrorIs(t, err, ErrClosed)
}

// TestRegistryZKFakeNewNoSession: New gives up when ctx ends first.
func TestRegistryZKFakeNewNoSession(t *testing.T) {
	dial := func(Config, func(zk.Event)) (conn, error) { return newFakeZK(), nil }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := newRegistry(ctx, Config{}, dial)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "zk: no session")
}

// TestRegistryZKFakeWatchAfterRecovery: a Watch started after a session
// loss was recovered from sends the state, not a stale Err; one started
// while the session is lost sends the Err first.
func TestRegistryZKFakeWatchAfterRecovery(t *testing.T) {
	r, f := newFakeRegistry(t, Config{SessionTimeout: 100 * time.Millisecond})
	ch, err := r.Watch(ctxT(t), "trade")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)
	f.expire(func() {
		registrytest.Await(t, ch, func(ev registry.Event) bool { return ev.Err != nil })
		lostCh, err := r.Watch(ctxT(t), "lost")
		require.NoError(t, err)
		ev := registrytest.Await(t, lostCh, func(registry.Event) bool { return true })
		require.ErrorIs(t, ev.Err, ErrSessionLost)
	})
	registrytest.AwaitState(t, ch, nil)
	ch2, err := r.Watch(ctxT(t), "trade")
	require.NoError(t, err)
	ev := registrytest.Await(t, ch2, func(registry.Event) bool { return true })
	require.NoError(t, ev.Err)
}

// TestRegistryZKFakeLossSeenLate: a watch busy in a request while the
// session is lost and recovered still reports the loss, with its cause,
// then the full state.
func TestRegistryZKFakeLossSeenLate(t *testing.T) {
	r, f := newFakeRegistry(t, Config{})
	ch, err := r.Watch(ctxT(t), "trade")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	f.put("/kiteq/sub/trade/g-bind", []byte(`[{"groupId":"g","topic":"trade","messageType":"a","bindType":0,"version":"1.0.0","watermark":0,"persistent":false}]`))
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.held > 0
	}, registrytest.Timeout, time.Millisecond, "the watch re-reads")
	f.expire(nil) // the watch is stuck in its re-read meanwhile
	require.Eventually(t, func() bool { return r.view().gen == 2 }, registrytest.Timeout, time.Millisecond)
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	close(gate)
	ev := registrytest.Await(t, ch, func(ev registry.Event) bool { return ev.Err != nil })
	require.ErrorIs(t, ev.Err, zk.ErrSessionExpired)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"g": {{GroupID: "g", Topic: "trade", MessageType: "a", Version: "1.0.0"}}})
}
