package daemon

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recorder notes what the stages of a test did, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) note(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// serve is a stage that notes its start and, once its ctx ends, its stop.
func (r *recorder) serve(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		r.note("start " + name)
		<-ctx.Done()
		r.note("stop " + name)
		return nil
	}
}

// An error a stage returns when it is stopped is stop's.
func TestLifecycleStopError(t *testing.T) {
	l := newLifecycle(slog.New(slog.DiscardHandler))
	l.run("a", func(ctx context.Context) error { <-ctx.Done(); return errors.New("flush failed") })
	l.run("b", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, l.wait(ctx))
	err := l.stop()
	require.EqualError(t, err, "a: flush failed", "context.Canceled is a normal stop")
}

// Stages stop in the reverse order of their start, each only after the
// one started after it returned, whatever ended the wait.
func TestLifecycleStopsInReverse(t *testing.T) {
	var r recorder
	l := newLifecycle(slog.New(slog.DiscardHandler))
	l.run("a", r.serve("a"))
	ready := make(chan struct{})
	require.NoError(t, l.runReady("b", func(ctx context.Context) error {
		r.note("start b")
		close(ready)
		<-ctx.Done()
		r.note("stop b")
		return nil
	}, ready))
	l.onStop("c", func() { r.note("stop c") })
	l.run("d", r.serve("d"))
	require.Eventually(t, func() bool { return len(r.all()) == 3 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, l.wait(ctx))
	require.NoError(t, l.stop())
	ev := r.all()
	require.ElementsMatch(t, []string{"start a", "start b", "start d"}, ev[:3], "a and d start in their own goroutines")
	require.Less(t, slices.Index(ev, "start b"), slices.Index(ev, "start d"), "d starts only once b is ready")
	require.Equal(t, []string{"stop d", "stop c", "stop b", "stop a"}, ev[3:])
}

// A stage whose run returns by itself ends the wait with its error; the
// others are still stopped in order.
func TestLifecycleStageExitEndsWait(t *testing.T) {
	var r recorder
	l := newLifecycle(slog.New(slog.DiscardHandler))
	l.run("a", r.serve("a"))
	boom := errors.New("boom")
	fail := make(chan struct{})
	l.run("b", func(context.Context) error { <-fail; return boom })
	l.run("c", r.serve("c"))
	close(fail)
	err := l.wait(context.Background())
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "b stopped")
	require.NoError(t, l.stop(), "b's error was wait's; stop does not repeat it")
	require.Equal(t, []string{"stop c", "stop a"}, r.all()[2:])

	// Returning nil before being asked to is an exit too.
	l = newLifecycle(slog.New(slog.DiscardHandler))
	l.run("quitter", func(context.Context) error { return nil })
	require.ErrorContains(t, l.wait(context.Background()), "quitter stopped by itself")
	require.NoError(t, l.stop())
}

// A stage that fails before it is ready is runReady's error; what started
// before it is stopped by stop.
func TestLifecycleRunReadyFailure(t *testing.T) {
	var r recorder
	l := newLifecycle(slog.New(slog.DiscardHandler))
	l.run("a", r.serve("a"))
	err := l.runReady("broker", func(context.Context) error { return errors.New("cannot subscribe") }, make(chan struct{}))
	require.ErrorContains(t, err, "broker stopped at start: cannot subscribe")
	require.NoError(t, l.stop(), "the failed stage's error is runReady's, not stop's")
	require.Eventually(t, func() bool { return len(r.all()) == 2 }, 5*time.Second, time.Millisecond)
	require.Equal(t, []string{"start a", "stop a"}, r.all())
}
