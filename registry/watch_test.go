package registry_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
)

// watchOnly is a Registry whose Watch hands out the test's channels.
type watchOnly struct {
	registry.Registry
	chans map[string]chan registry.Event
}

func (w watchOnly) Watch(_ context.Context, topic string) (<-chan registry.Event, error) {
	ch, ok := w.chans[topic]
	if !ok {
		return nil, errors.New("no such topic")
	}
	return ch, nil
}

func TestWatchTopics(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	r := watchOnly{chans: map[string]chan registry.Event{"a": make(chan registry.Event, 4), "b": make(chan registry.Event, 4)}}
	bind := func(topic, group string, watermark int32) registry.Binding {
		return registry.Binding{GroupID: group, Topic: topic, MessageType: "m", BindType: registry.Direct, Watermark: watermark}
	}
	// A lost session before the first state is skipped; the first full
	// state of every topic is the initial bindings, with KiteQ's
	// watermark rule (<= 0 is 6000, at most 6000).
	r.chans["a"] <- registry.Event{Topic: "a", Err: errors.New("session lost")}
	r.chans["a"] <- registry.Event{Topic: "a", Bindings: map[string][]registry.Binding{"g": {bind("a", "g", 0)}}}
	r.chans["b"] <- registry.Event{Topic: "b", Bindings: map[string][]registry.Binding{"g": {bind("b", "g", 9000)}, "h": {bind("b", "h", 10)}}}
	w, initial, err := registry.WatchTopics(context.Background(), context.Background(), r, []string{"a", "b"}, time.Second, log)
	require.NoError(t, err)
	require.Equal(t, map[string][]registry.Binding{
		"g": {bind("a", "g", 6000), bind("b", "g", 6000)},
		"h": {bind("b", "h", 10)},
	}, initial)

	// Later states go to apply, per topic, until ctx ends.
	var mu sync.Mutex
	got := map[string]map[string][]registry.Binding{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, func(topic string, byGroup map[string][]registry.Binding) {
			mu.Lock()
			got[topic] = byGroup
			mu.Unlock()
		})
	}()
	r.chans["b"] <- registry.Event{Topic: "b", Err: errors.New("session lost")}
	r.chans["b"] <- registry.Event{Topic: "b", Bindings: map[string][]registry.Binding{"h": {bind("b", "h", -1)}}}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["b"]) == 1
	}, 5*time.Second, time.Millisecond)
	mu.Lock()
	require.Equal(t, map[string][]registry.Binding{"h": {bind("b", "h", 6000)}}, got["b"])
	require.NotContains(t, got, "a")
	mu.Unlock()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its ctx ended")
	}
}

func TestWatchTopicsGivesUp(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	r := watchOnly{chans: map[string]chan registry.Event{"a": make(chan registry.Event)}}
	_, _, err := registry.WatchTopics(context.Background(), context.Background(), r, []string{"a"}, 50*time.Millisecond, log)
	require.ErrorContains(t, err, "no bindings of a from the registry within 50ms")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = registry.WatchTopics(ctx, context.Background(), r, []string{"a"}, time.Minute, log)
	require.ErrorIs(t, err, context.Canceled, "start-up interrupted")

	_, _, err = registry.WatchTopics(context.Background(), context.Background(), r, nil, time.Second, log)
	require.ErrorContains(t, err, "topics must be listed")
	close(r.chans["a"])
	_, _, err = registry.WatchTopics(context.Background(), context.Background(), r, []string{"a"}, time.Second, log)
	require.ErrorContains(t, err, "registry closed the watch of a")
}
