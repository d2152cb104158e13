package file

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/registry/registrytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuffer keeps logs for assertions and echoes them to t.Log.
type logBuffer struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func open(t *testing.T, cfg Config) (*Registry, *logBuffer) {
	t.Helper()
	logs := &logBuffer{t: t}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	r, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, logs
}

func TestRegistryFileParseURI(t *testing.T) {
	for uri, want := range map[string]string{
		"file://./conf/registry.yaml":    "./conf/registry.yaml",
		"file://conf/registry_demo.yaml": "conf/registry_demo.yaml",
		"file:///etc/kiteq/r.yaml":       "/etc/kiteq/r.yaml",
		"FILE://x.yaml":                  "x.yaml",
	} {
		got, err := ParseURI(uri)
		require.NoError(t, err, uri)
		require.Equal(t, want, got, uri)
	}
	for _, uri := range []string{"file://", "zk://localhost:2181", "./conf/registry.yaml", ""} {
		_, err := ParseURI(uri)
		require.ErrorContains(t, err, "file: ", uri)
	}
}

// TestRegistryFileKiteQDemo: KiteQ's demo has unsorted topic lists; every
// topic must still find both brokers (KiteQ finds only "user-profile").
func TestRegistryFileKiteQDemo(t *testing.T) {
	r, _ := open(t, Config{Path: "testdata/kiteq_demo.yaml"})
	for _, topic := range []string{"relation", "message", "user-profile"} {
		require.Equal(t, []string{"localhost:13800", "localhost:13900"}, r.Brokers(topic), topic)
	}
	require.Empty(t, r.Brokers("trade"))
	require.Empty(t, r.Brokers(""))

	ch, err := r.Watch(t.Context(), "user-profile")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-user-profile": {{
		GroupID: "s-user-profile", Topic: "user-profile", MessageType: "profile-update",
		BindType: registry.Direct, Version: "1.0.0", Watermark: 1000, Persistent: true,
	}}})
	ch, err = r.Watch(t.Context(), "relation")
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)

	require.NoError(t, r.PublishServer(t.Context(), "localhost:13800", []string{"relation"}))
	require.NoError(t, r.UnpublishServer(t.Context(), "localhost:13900", nil))
	require.ErrorContains(t, r.PublishServer(t.Context(), "localhost:14000", []string{"relation"}), "not a broker")
	err = r.PublishBindings(t.Context(), "s-mts-test1", []registry.Binding{{Topic: "relation", MessageType: "a"}})
	require.ErrorIs(t, err, registry.ErrStatic)
	require.ErrorContains(t, err, "file: ")
}

func TestRegistryFileFull(t *testing.T) {
	r, logs := open(t, Config{Path: "testdata/full.yaml"})
	require.Contains(t, logs.String(), `bindType \"topic\" read as direct`)
	require.Equal(t, []string{"10.0.0.1:13800", "10.0.0.2:13800"}, r.Brokers("user"))
	require.Equal(t, []string{"10.0.0.2:13800"}, r.Brokers("feed"))

	b := func(group, topic, mt string, kind registry.BindType, wm int32, persistent bool) registry.Binding {
		return registry.Binding{GroupID: group, Topic: topic, MessageType: mt, BindType: kind, Version: "1.0.0", Watermark: wm, Persistent: persistent}
	}
	for topic, want := range map[string]map[string][]registry.Binding{
		"trade": {
			"s-trade-a": {b("s-trade-a", "trade", "pay-succ", registry.Direct, 1000, true), b("s-trade-a", "trade", `refund-\d+`, registry.Regx, -1, false)},
			"s-trade-b": {b("s-trade-b", "trade", "pay-succ", registry.Direct, 1000, true)},
		},
		"user": {"s-user": {b("s-user", "user", "*", registry.Fanout, 0, true)}},
		"feed": {"s-feed": {b("s-feed", "feed", "post", registry.Direct, 0, false)}},
		"none": {},
	} {
		ch, err := r.Watch(t.Context(), topic)
		require.NoError(t, err)
		registrytest.AwaitState(t, ch, want)
	}
}

func TestRegistryFileInvalid(t *testing.T) {
	dir := t.TempDir()
	for name, yaml := range map[string]string{
		"not yaml":          "brokers: [",
		"duplicate broker":  "brokers:\n  - address: a:1\n  - address: a:1\n",
		"broker no address": "brokers:\n  - topics: [t]\n",
		"no groupIds":       "bindings:\n  - topic: t\n    messageType: m\n",
		"no topic":          "bindings:\n  - groupIds: [g]\n    messageType: m\n",
		"direct no type":    "bindings:\n  - groupIds: [g]\n    topic: t\n",
		"bad regx":          "bindings:\n  - groupIds: [g]\n    topic: t\n    bindType: regx\n    messageType: \"(\"\n",
		"empty group":       "bindings:\n  - groupIds: [\"\"]\n    topic: t\n    messageType: m\n",
	} {
		p := filepath.Join(dir, "r.yaml")
		require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
		_, err := New(Config{Path: p})
		require.ErrorContains(t, err, "file: ", name)
	}
	_, err := New(Config{Path: filepath.Join(dir, "missing.yaml")})
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = New(Config{})
	require.Error(t, err)
	// An empty file is an empty registry.
	p := filepath.Join(dir, "empty.yaml")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	r, err := New(Config{Path: p})
	require.NoError(t, err)
	require.NoError(t, r.Close())
}

// TestRegistryFileReload: a changed file reaches the watches; a broken or
// missing file is logged and the previous state kept, never a panic.
func TestRegistryFileReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "registry.yaml")
	// Replace the file atomically: a reload must not see it half-written.
	write := func(s string) {
		tmp := p + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(s), 0o600))
		require.NoError(t, os.Rename(tmp, p))
	}
	write("brokers:\n  - address: a:1\n    topics: [t]\nbindings:\n  - groupIds: [g]\n    topic: t\n    messageType: m1\n")
	r, logs := open(t, Config{Path: p, ReloadInterval: 10 * time.Millisecond})
	ch, err := r.Watch(t.Context(), "t")
	require.NoError(t, err)
	other, err := r.Watch(t.Context(), "u")
	require.NoError(t, err)
	bind := func(mt string) map[string][]registry.Binding {
		return map[string][]registry.Binding{"g": {{GroupID: "g", Topic: "t", MessageType: mt, Version: "1.0.0"}}}
	}
	registrytest.AwaitState(t, ch, bind("m1"))
	registrytest.AwaitState(t, other, nil)

	write("brokers:\n  - address: b:1\n    topics: [t]\nbindings:\n  - groupIds: [g]\n    topic: t\n    messageType: m2\n")
	registrytest.AwaitState(t, ch, bind("m2"))
	require.Equal(t, []string{"b:1"}, r.Brokers("t"))
	select {
	case ev := <-other:
		t.Fatalf("topic u did not change, got %+v", ev)
	default:
	}

	write("brokers: [")
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte("reload failed")) }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, os.Remove(p))
	require.Eventually(t, func() bool { return bytes.Contains([]byte(logs.String()), []byte("no such file")) }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{"b:1"}, r.Brokers("t"), "previous state kept")
	select {
	case ev := <-ch:
		t.Fatalf("no change expected, got %+v", ev)
	default:
	}

	write("bindings:\n  - groupIds: [g]\n    topic: t\n    messageType: m3\n")
	registrytest.AwaitState(t, ch, bind("m3"))
	require.Empty(t, r.Brokers("t"))
}

func TestRegistryFileWatchEnds(t *testing.T) {
	r, _ := open(t, Config{Path: "testdata/full.yaml", ReloadInterval: -1})
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := r.Watch(ctx, "trade")
	require.NoError(t, err)
	cancel()
	registrytest.AwaitClosed(t, ch)
	ch, err = r.Watch(t.Context(), "trade")
	require.NoError(t, err)
	require.NoError(t, r.Close())
	registrytest.AwaitClosed(t, ch)
	require.NoError(t, r.Close())
	_, err = r.Watch(t.Context(), "trade")
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, r.PublishServer(t.Context(), "10.0.0.1:13800", nil), ErrClosed)
	require.True(t, errors.Is(r.PublishBindings(t.Context(), "g", nil), ErrClosed))
}

// TestRegistryFileConformance runs the parts of the suite that apply to a
// static registry (the binding-publishing tests skip on ErrStatic).
func TestRegistryFileConformance(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		r, _ := open(t, Config{Path: "testdata/full.yaml"})
		return r
	})
}
