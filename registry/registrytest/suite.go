package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
)

// Factory returns a new registry for one subtest. Run closes it when the
// subtest ends (Close must be idempotent, so the factory may also close it
// in t.Cleanup). A static registry's factory must list ServerAddr as a
// broker.
type Factory func(t *testing.T) registry.Registry

// ServerAddr is the broker address the suite advertises.
const ServerAddr = "127.0.0.1:13800"

// Timeout bounds every wait of the suite.
const Timeout = 15 * time.Second

// Run runs the conformance suite against the registries newRegistry makes.
func Run(t *testing.T, newRegistry Factory) {
	open := func(t *testing.T) registry.Registry {
		t.Helper()
		r := newRegistry(t)
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	t.Run("WatchSendsInitialState", func(t *testing.T) { testWatchInitial(t, open(t)) })
	t.Run("WatchRejectsEmptyTopic", func(t *testing.T) {
		_, err := open(t).Watch(t.Context(), "")
		require.Error(t, err)
	})
	t.Run("WatchEndsWithContext", func(t *testing.T) { testWatchCtx(t, open(t)) })
	t.Run("CloseClosesWatches", func(t *testing.T) { testClose(t, open(t)) })
	t.Run("PublishServer", func(t *testing.T) { testPublishServer(t, open(t)) })
	t.Run("PublishBindingsShowsUp", func(t *testing.T) { testPublishShowsUp(t, open(t)) })
	t.Run("PublishBeforeWatch", func(t *testing.T) { testPublishBeforeWatch(t, open(t)) })
	t.Run("ReplaceAndDelete", func(t *testing.T) { testReplaceAndDelete(t, open(t)) })
	t.Run("TwoGroups", func(t *testing.T) { testTwoGroups(t, open(t)) })
	t.Run("GroupMovesTopic", func(t *testing.T) { testMoveTopic(t, open(t)) })
	t.Run("InvalidBindings", func(t *testing.T) { testInvalid(t, open(t)) })
	t.Run("TwoWatchesOneTopic", func(t *testing.T) { testTwoWatches(t, open(t)) })
}

// UniqueTopic returns a topic name no other test uses, safe as a znode
// name and a NATS subject token.
func UniqueTopic(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "rt-" + strings.Trim(name, "-") + "-" + hex.EncodeToString(b)
}

// Await reads ch until an event satisfies cond and returns it. It fails
// the test if ch closes or Timeout passes first.
func Await(t testing.TB, ch <-chan registry.Event, cond func(registry.Event) bool) registry.Event {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	var last registry.Event
	for {
		select {
		case ev, ok := <-ch:
			require.True(t, ok, "watch channel closed; last event %+v", last)
			if cond(ev) {
				return ev
			}
			last = ev
		case <-timer.C:
			require.FailNow(t, "no matching event", "within %v; last event %+v", Timeout, last)
		}
	}
}

// AwaitState waits for an event (without Err) whose bindings are want.
func AwaitState(t testing.TB, ch <-chan registry.Event, want map[string][]registry.Binding) registry.Event {
	t.Helper()
	return Await(t, ch, func(ev registry.Event) bool {
		return ev.Err == nil && EqualState(ev.Bindings, want)
	})
}

// AwaitClosed waits until ch is closed, discarding events.
func AwaitClosed(t testing.TB, ch <-chan registry.Event) {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			require.FailNow(t, "watch channel not closed", "within %v", Timeout)
		}
	}
}

// EqualState compares two group → bindings maps; a nil map equals an
// empty one.
func EqualState(a, b map[string][]registry.Binding) bool {
	return maps.EqualFunc(a, b, func(x, y []registry.Binding) bool { return slices.Equal(x, y) })
}

// isStatic publishes a valid binding and reports whether the registry
// refuses it as static; a static registry skips the binding tests.
func isStatic(t *testing.T, r registry.Registry) bool {
	t.Helper()
	err := r.PublishBindings(t.Context(), "rt-probe", nil)
	if errors.Is(err, registry.ErrStatic) {
		return true
	}
	require.NoError(t, err)
	return false
}

func skipIfStatic(t *testing.T, r registry.Registry) {
	t.Helper()
	if isStatic(t, r) {
		t.Skip("static registry: bindings come only from its source")
	}
}

func direct(group, topic, mt string) registry.Binding {
	return registry.Binding{GroupID: group, Topic: topic, MessageType: mt, BindType: registry.Direct, Watermark: 1000, Persistent: true}
}

func norm(bs ...registry.Binding) []registry.Binding {
	out := make([]registry.Binding, len(bs))
	for i, b := range bs {
		out[i] = b.Normalize()
	}
	return out
}

func testWatchInitial(t *testing.T, r registry.Registry) {
	topic := UniqueTopic(t)
	ch, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	ev := Await(t, ch, func(registry.Event) bool { return true })
	require.NoError(t, ev.Err)
	require.Equal(t, topic, ev.Topic)
	require.Empty(t, ev.Bindings)
}

func testWatchCtx(t *testing.T, r registry.Registry) {
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := r.Watch(ctx, UniqueTopic(t))
	require.NoError(t, err)
	Await(t, ch, func(registry.Event) bool { return true })
	cancel()
	AwaitClosed(t, ch)
	// The registry itself goes on working.
	ch2, err := r.Watch(t.Context(), UniqueTopic(t))
	require.NoError(t, err)
	Await(t, ch2, func(registry.Event) bool { return true })
}

func testClose(t *testing.T, r registry.Registry) {
	ch1, err := r.Watch(t.Context(), UniqueTopic(t))
	require.NoError(t, err)
	ch2, err := r.Watch(t.Context(), UniqueTopic(t))
	require.NoError(t, err)
	Await(t, ch1, func(registry.Event) bool { return true })
	require.NoError(t, r.Close())
	AwaitClosed(t, ch1)
	AwaitClosed(t, ch2)
	require.NoError(t, r.Close(), "Close is idempotent")
	_, err = r.Watch(t.Context(), UniqueTopic(t))
	require.Error(t, err, "Watch after Close")
	require.Error(t, r.PublishServer(t.Context(), ServerAddr, []string{UniqueTopic(t)}), "PublishServer after Close")
	require.Error(t, r.PublishBindings(t.Context(), "g", nil), "PublishBindings after Close")
}

func testPublishServer(t *testing.T, r registry.Registry) {
	topics := []string{UniqueTopic(t), UniqueTopic(t)}
	require.NoError(t, r.PublishServer(t.Context(), ServerAddr, topics))
	require.NoError(t, r.PublishServer(t.Context(), ServerAddr, topics), "publishing again")
	require.NoError(t, r.UnpublishServer(t.Context(), ServerAddr, topics[:1]))
	require.NoError(t, r.UnpublishServer(t.Context(), ServerAddr, topics))
	for _, addr := range []string{":13800", "0.0.0.0:13800", "[::]:13800", "13800", ""} {
		require.Error(t, r.PublishServer(t.Context(), addr, topics), "addr %q", addr)
	}
}

func testPublishShowsUp(t *testing.T, r registry.Registry) {
	skipIfStatic(t, r)
	topic := UniqueTopic(t)
	ch, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	AwaitState(t, ch, nil)
	b := direct("", topic, "pay-succ") // empty GroupID: the group is set
	require.NoError(t, r.PublishBindings(t.Context(), "s-trade", []registry.Binding{b}))
	b.GroupID = "s-trade"
	ev := AwaitState(t, ch, map[string][]registry.Binding{"s-trade": norm(b)})
	require.Equal(t, registry.Version, ev.Bindings["s-trade"][0].Version)
}

func testPublishBeforeWatch(t *testing.T, r registry.Registry) {
	skipIfStatic(t, r)
	topic := UniqueTopic(t)
	bs := []registry.Binding{
		direct("s-a", topic, "pay-succ"),
		{GroupID: "s-a", Topic: topic, MessageType: `refund-\d+`, BindType: registry.Regx},
	}
	require.NoError(t, r.PublishBindings(t.Context(), "s-a", bs))
	ch, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	ev := Await(t, ch, func(registry.Event) bool { return true })
	require.NoError(t, ev.Err)
	require.True(t, EqualState(map[string][]registry.Binding{"s-a": norm(bs...)}, ev.Bindings), "first event %+v", ev)
}

func testReplaceAndDelete(t *testing.T, r registry.Registry) {
	skipIfStatic(t, r)
	topic := UniqueTopic(t)
	ch, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	b1, b2 := direct("g", topic, "a"), direct("g", topic, "b")
	require.NoError(t, r.PublishBindings(t.Context(), "g", []registry.Binding{b1}))
	AwaitState(t, ch, map[string][]registry.Binding{"g": norm(b1)})
	require.NoError(t, r.PublishBindings(t.Context(), "g", []registry.Binding{b2}))
	AwaitState(t, ch, map[string][]registry.Binding{"g": norm(b2)})
	fan := registry.Binding{GroupID: "g", Topic: topic, BindType: registry.Fanout, Watermark: 5}
	require.NoError(t, r.PublishBindings(t.Context(), "g", []registry.Binding{fan}))
	ev := AwaitState(t, ch, map[string][]registry.Binding{"g": norm(fan)})
	require.Equal(t, "*", ev.Bindings["g"][0].MessageType, "fanout normalized")
	require.NoError(t, r.PublishBindings(t.Context(), "g", nil))
	AwaitState(t, ch, nil)
}

func testTwoGroups(t *testing.T, r registry.Registry) {
	skipIfStatic(t, r)
	topic := UniqueTopic(t)
	ch, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	b1, b2 := direct("g1", topic, "a"), direct("g2", topic, "a")
	require.NoError(t, r.PublishBindings(t.Context(), "g1", []registry.Binding{b1}))
	require.NoError(t, r.PublishBindings(t.Context(), "g2", []registry.Binding{b2}))
	AwaitState(t, ch, map[string][]registry.Binding{"g1": norm(b1), "g2": norm(b2)})
	require.NoError(t, r.PublishBindings(t.Context(), "g1", nil))
	// Deleting g1 must never make g2 disappear, not even briefly (KiteQ's
	// broker forgets the whole topic until it re-reads the children).
	Await(t, ch, func(ev registry.Event) bool {
		require.NoError(t, ev.Err)
		require.Equal(t, norm(b2), ev.Bindings["g2"], "g2 vanished from %+v", ev.Bindings)
		return len(ev.Bindings) == 1
	})
}

func testMoveTopic(t *testing.T, r registry.Registry) {
	skipIfStatic(t, r)
	ta, tb := UniqueTopic(t), UniqueTopic(t)
	cha, err := r.Watch(t.Context(), ta)
	require.NoError(t, err)
	chb, err := r.Watch(t.Context(), tb)
	require.NoError(t, err)
	ba, bb := direct("g", ta, "x"), direct("g", tb, "x")
	require.NoError(t, r.PublishBindings(t.Context(), "g", []registry.Binding{ba, bb}))
	AwaitState(t, cha, map[string][]registry.Binding{"g": norm(ba)})
	AwaitState(t, chb, map[string][]registry.Binding{"g": norm(bb)})
	require.NoError(t, r.PublishBindings(t.Context(), "g", []registry.Binding{bb}))
	AwaitState(t, cha, nil)
	// tb keeps g (and a later event must still have it).
	require.NoError(t, r.PublishBindings(t.Context(), "other", []registry.Binding{direct("other", tb, "y")}))
	AwaitState(t, chb, map[string][]registry.Binding{"g": norm(bb), "other": norm(direct("other", tb, "y"))})
}

func testInvalid(t *testing.T, r registry.Registry) {
	skipIfStatic(t, r)
	topic := UniqueTopic(t)
	for name, bs := range map[string][]registry.Binding{
		"other group":  {direct("someone-else", topic, "a")},
		"no topic":     {direct("g", "", "a")},
		"bad regx":     {{GroupID: "g", Topic: topic, MessageType: "(", BindType: registry.Regx}},
		"no type":      {{GroupID: "g", Topic: topic, BindType: registry.Direct}},
		"bad bindType": {{GroupID: "g", Topic: topic, MessageType: "a", BindType: 9}},
	} {
		err := r.PublishBindings(t.Context(), "g", bs)
		require.Error(t, err, name)
		require.NotErrorIs(t, err, registry.ErrStatic, name)
	}
	require.Error(t, r.PublishBindings(t.Context(), "", []registry.Binding{direct("", topic, "a")}), "empty group")
	ch, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	AwaitState(t, ch, nil)
}

func testTwoWatches(t *testing.T, r registry.Registry) {
	topic := UniqueTopic(t)
	ch1, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	ch2, err := r.Watch(t.Context(), topic)
	require.NoError(t, err)
	AwaitState(t, ch1, nil)
	AwaitState(t, ch2, nil)
	skipIfStatic(t, r)
	b := direct("g", topic, "a")
	require.NoError(t, r.PublishBindings(t.Context(), "g", []registry.Binding{b}))
	want := map[string][]registry.Binding{"g": norm(b)}
	AwaitState(t, ch1, want)
	AwaitState(t, ch2, want)
}
