package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// recordingStore records (copies of) the batches it is given and blocks each
// write until released, so tests can see group commit happen.
type recordingStore struct {
	store.Store
	mu      sync.Mutex
	batches []*store.Batch
	entered chan struct{} // capacity 1: a Write has started
	gate    chan struct{}
	fail    error
}

func (s *recordingStore) Write(_ context.Context, b *store.Batch) ([]store.SaveResult, error) {
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	if s.gate != nil {
		<-s.gate
	}
	// The Batcher reuses b and its slices once Write returns: keep a copy.
	c := *b
	c.Saves, c.Updates = slices.Clone(b.Saves), slices.Clone(b.Updates)
	s.mu.Lock()
	s.batches = append(s.batches, &c)
	s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	res := make([]store.SaveResult, len(b.Saves))
	for i, m := range b.Saves {
		res[i].Seq = m.Seq
	}
	return res, nil
}

func TestBatcherGroupsConcurrentWrites(t *testing.T) {
	rs := &recordingStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b := store.NewBatcher(rs, store.BatcherConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()

	var wg sync.WaitGroup
	wg.Add(101)
	// The first save starts a write that blocks on the gate; the next 100
	// queue up behind it and must share the second write.
	require.NoError(t, b.Save(&store.Message{Seq: 1}, func(store.SaveResult, error) { wg.Done() }))
	<-rs.entered // the first write has its batch: the rest queue behind it
	for i := 0; i < 100; i++ {
		seq := uint64(i + 2)
		require.NoError(t, b.Save(&store.Message{Seq: seq}, func(r store.SaveResult, err error) {
			if err != nil || r.Seq != seq {
				t.Errorf("save %d: result %+v err %v", seq, r, err)
			}
			wg.Done()
		}))
	}
	close(rs.gate)
	wg.Wait()
	cancel()
	require.NoError(t, <-done)
	require.Len(t, rs.batches, 2)
	require.Len(t, rs.batches[0].Saves, 1)
	require.Len(t, rs.batches[1].Saves, 100)
}

func TestBatcherReportsWriteFailureToEveryCaller(t *testing.T) {
	boom := errors.New("disk on fire")
	rs := &recordingStore{fail: boom}
	b := store.NewBatcher(rs, store.BatcherConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()

	errs := make(chan error, 2)
	require.NoError(t, b.Save(&store.Message{}, func(_ store.SaveResult, err error) { errs <- err }))
	require.NoError(t, b.Update(store.Update{Op: store.OpAck}, func(err error) { errs <- err }))
	require.ErrorIs(t, <-errs, boom)
	require.ErrorIs(t, <-errs, boom)
	cancel()
	require.NoError(t, <-done)
}

func TestBatcherBusyWhenQueueFull(t *testing.T) {
	rs := &recordingStore{}
	b := store.NewBatcher(rs, store.BatcherConfig{QueueSize: 2})
	noop := func(store.SaveResult, error) {}
	require.NoError(t, b.Save(&store.Message{}, noop))
	require.NoError(t, b.Save(&store.Message{}, noop))
	require.ErrorIs(t, b.Save(&store.Message{}, noop), store.ErrBusy)
}

func TestBatcherDrainsOnShutdownThenRefuses(t *testing.T) {
	rs := &recordingStore{}
	b := store.NewBatcher(rs, store.BatcherConfig{})
	got := 0
	for i := 0; i < 10; i++ {
		require.NoError(t, b.Save(&store.Message{}, func(_ store.SaveResult, err error) {
			require.NoError(t, err)
			got++
		}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, b.Run(ctx))
	require.Equal(t, 10, got)
	require.ErrorIs(t, b.Save(&store.Message{}, func(store.SaveResult, error) {}), store.ErrClosed)
}

func TestBatcherBusyPastMaxBytes(t *testing.T) {
	rs := &recordingStore{}
	b := store.NewBatcher(rs, store.BatcherConfig{MaxBytes: 3000})
	noop := func(store.SaveResult, error) {}
	require.NoError(t, b.Save(&store.Message{Body: make([]byte, 1000)}, noop))
	require.NoError(t, b.Save(&store.Message{Body: make([]byte, 1000)}, noop))
	require.ErrorIs(t, b.Save(&store.Message{Body: make([]byte, 1000)}, noop), store.ErrBusy)
	require.NoError(t, b.Update(store.Update{Op: store.OpAck}, nil), "updates are not bounded by bytes")

	// Once the queued saves are written, there is room again.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, b.Run(ctx))
	b2 := store.NewBatcher(rs, store.BatcherConfig{MaxBytes: 3000})
	done := make(chan struct{})
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { _ = b2.Run(ctx2); close(done) }()
	for i := 0; i < 10; i++ {
		saved := make(chan error, 1)
		require.NoError(t, b2.Save(&store.Message{Body: make([]byte, 1000)}, func(_ store.SaveResult, err error) { saved <- err }))
		require.NoError(t, <-saved)
	}
	cancel2()
	<-done
}

// TestBatcherObserve: Observe is told of every write, its batch size and
// how long it took on the Batcher's clock.
func TestBatcherObserve(t *testing.T) {
	type obs struct {
		batch int
		d     time.Duration
	}
	var (
		mu   sync.Mutex
		now  = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		seen []obs
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rs := &recordingStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b := store.NewBatcher(rs, store.BatcherConfig{Now: clock, Observe: func(batch int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, obs{batch, d})
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()

	var wg sync.WaitGroup
	wg.Add(11)
	cb := func(store.SaveResult, error) { wg.Done() }
	require.NoError(t, b.Save(&store.Message{Seq: 1}, cb))
	<-rs.entered // the first write holds one save; it takes 40 ms
	for i := range 10 {
		if i%2 == 0 {
			require.NoError(t, b.Save(&store.Message{Seq: uint64(i + 2)}, cb))
		} else {
			require.NoError(t, b.Update(store.Update{Op: store.OpAck}, func(error) { wg.Done() }))
		}
	}
	mu.Lock()
	now = now.Add(40 * time.Millisecond)
	mu.Unlock()
	close(rs.gate)
	wg.Wait()
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, []obs{{1, 40 * time.Millisecond}, {10, 0}}, seen, "saves and updates count; the second write took no time on the clock")
}
