package registrytest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/registry/registrytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRegistryFakeConformance(t *testing.T) {
	registrytest.Run(t, func(*testing.T) registry.Registry { return registrytest.NewFake() })
}

func TestRegistryFakeServers(t *testing.T) {
	f := registrytest.NewFake()
	defer func() { _ = f.Close() }()
	ctx := context.Background()
	require.NoError(t, f.PublishServer(ctx, "b:1", []string{"trade", "user"}))
	require.NoError(t, f.PublishServer(ctx, "a:1", []string{"trade"}))
	require.Equal(t, []string{"a:1", "b:1"}, f.Servers("trade"))
	require.NoError(t, f.UnpublishServer(ctx, "b:1", nil))
	require.Equal(t, []string{"a:1"}, f.Servers("trade"))
	require.Empty(t, f.Servers("user"))
}

// TestRegistryFakeKiteQClient: SetBindings stands for a KiteQ client's
// write; LoseSession/RestoreSession for a ZooKeeper session loss.
func TestRegistryFakeKiteQClient(t *testing.T) {
	f := registrytest.NewFake()
	defer func() { _ = f.Close() }()
	ch, err := f.Watch(t.Context(), "trade")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)

	raw := registry.Binding{GroupID: "k", Topic: "trade", MessageType: "m", Watermark: -1}
	f.SetBindings("trade", "k", []registry.Binding{raw})
	want := map[string][]registry.Binding{"k": {raw}}
	registrytest.AwaitState(t, ch, want)
	require.True(t, registrytest.EqualState(want, f.Bindings("trade")))

	boom := errors.New("boom")
	f.LoseSession(boom)
	ev := registrytest.Await(t, ch, func(registry.Event) bool { return true })
	require.ErrorIs(t, ev.Err, boom)
	require.ErrorIs(t, f.PublishBindings(t.Context(), "g", nil), boom)
	f.SetBindings("trade", "k", nil) // a change while lost shows after restore
	f.RestoreSession()
	registrytest.AwaitState(t, ch, nil)

	f.LoseSession(nil)
	ev = registrytest.Await(t, ch, func(registry.Event) bool { return true })
	require.ErrorIs(t, ev.Err, registrytest.ErrFakeSessionLost)
	f.RestoreSession()
}
