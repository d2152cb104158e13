package zk

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// nextRoutes reads the next state of a WatchRoutes channel.
func nextRoutes(t *testing.T, ch <-chan map[string]string) map[string]string {
	t.Helper()
	select {
	case s, ok := <-ch:
		require.True(t, ok, "watch closed")
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no route state within 5s")
		return nil
	}
}

// The route node: ephemeral, under /kitenats (KiteQ's /kiteq untouched),
// holding the URL; the watch sends every broker's URL at once and after
// each change; the node comes back after a session expiry.
func TestRegistryZKRouteNode(t *testing.T) {
	r, f := newFakeRegistry(t, Config{})
	ctx := ctxT(t)
	w, err := r.WatchRoutes(ctx, "kitenats")
	require.NoError(t, err)
	require.Empty(t, nextRoutes(t, w), "nobody yet")

	require.NoError(t, r.PublishRoute(ctx, "kitenats", "b1", "nats-route://10.0.0.1:6222"))
	data, owner, ok := f.node("/kitenats/routes/kitenats/b1")
	require.True(t, ok)
	require.Equal(t, "nats-route://10.0.0.1:6222", string(data))
	require.Equal(t, f.SessionID(), owner, "ephemeral")
	require.Equal(t, map[string]string{"b1": "nats-route://10.0.0.1:6222"}, nextRoutes(t, w))

	// Another broker's node (another client), and one of another cluster.
	f.put("/kitenats/routes/kitenats/b2", []byte("nats-route://10.0.0.2:6222"))
	f.put("/kitenats/routes/other/b9", []byte("nats-route://10.0.0.9:6222"))
	require.Equal(t, map[string]string{"b1": "nats-route://10.0.0.1:6222", "b2": "nats-route://10.0.0.2:6222"}, nextRoutes(t, w))
	now, err := r.Routes(ctx, "kitenats")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"b1": "nats-route://10.0.0.1:6222", "b2": "nats-route://10.0.0.2:6222"}, now)
	none, err := r.Routes(ctx, "nobody")
	require.NoError(t, err)
	require.Empty(t, none)
	f.remove("/kitenats/routes/kitenats/b2")
	require.Equal(t, map[string]string{"b1": "nats-route://10.0.0.1:6222"}, nextRoutes(t, w))

	// A new session writes the node again.
	f.expire(func() { f.remove("/kitenats/routes/kitenats/b1") })
	require.Eventually(t, func() bool {
		data, owner, ok := f.node("/kitenats/routes/kitenats/b1")
		return ok && string(data) == "nats-route://10.0.0.1:6222" && owner == f.SessionID()
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, r.UnpublishRoute(ctx, "kitenats", "b1"))
	_, _, ok = f.node("/kitenats/routes/kitenats/b1")
	require.False(t, ok)
	require.Eventually(t, func() bool {
		select {
		case s := <-w:
			return len(s) == 0
		default:
			return false
		}
	}, 5*time.Second, 10*time.Millisecond)

	require.Error(t, r.PublishRoute(ctx, "kitenats", "a/b", "nats-route://x:1"))
	require.Error(t, r.PublishRoute(ctx, "", "b", "nats-route://x:1"))
	require.Error(t, r.PublishRoute(ctx, "kitenats", "b", ""))
	_, err = r.WatchRoutes(ctx, "a/b")
	require.Error(t, err)

	// Close ends the watch.
	require.NoError(t, r.Close())
	for range w {
		continue
	}
}
