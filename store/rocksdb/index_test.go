package rocksdb

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// countKeys counts the keys that start with prefix.
func countKeys(t testing.TB, s *Store, prefix byte) int {
	t.Helper()
	s.life.RLock()
	defer s.life.RUnlock()
	v := s.newView(false)
	defer v.close()
	n := 0
	require.NoError(t, v.scan([]byte{prefix}, []byte{prefix + 1}, func([]byte, []byte) error {
		n++
		return nil
	}))
	return n
}

func TestStoreRocksDBDueHintRisesAndFalls(t *testing.T) {
	s := openTest(t, t.TempDir(), Async)
	defer func() { require.NoError(t, s.Close()) }()

	var saves []*store.Message
	var acks []store.Update
	for i := range 10 {
		m := testMsg(fmt.Sprintf("old-%d", i), "g")
		m.Groups[0].NextAttempt = t0.Add(time.Duration(i-10) * time.Second)
		saves = append(saves, m)
		acks = append(acks, store.Update{Op: store.OpAck, Topic: "t", ID: m.ID, Group: "g"})
	}
	mustWrite(t, s, &store.Batch{Now: t0, Saves: saves})
	require.Len(t, dueIDs(t, s, "g", t0, 100), 10)
	mustWrite(t, s, &store.Batch{Now: t0, Updates: acks})
	require.Empty(t, dueIDs(t, s, "g", t0, 100))
	s.hints.mu.Lock()
	from := s.hints.from["g"]
	s.hints.mu.Unlock()
	require.Equal(t, timeKey(t0)+1, from, "the scan starts past what is acked")

	// A message due before the hint is still found, saved or retried.
	early := testMsg("early", "g")
	early.Groups[0].NextAttempt = t0.Add(-time.Hour)
	late := testMsg("late", "g")
	late.Groups[0].NextAttempt = t0.Add(time.Hour)
	mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{early, late}})
	require.Equal(t, []string{"early"}, dueIDs(t, s, "g", t0, 100))
	require.Empty(t, dueIDs(t, s, "g", t0.Add(-2*time.Hour), 100))
	mustWrite(t, s, &store.Batch{Now: t0, Updates: []store.Update{
		{Op: store.OpRetry, Topic: "t", ID: "late", Group: "g", Attempts: 1, Next: t0.Add(-3 * time.Hour)},
	}})
	require.Equal(t, []string{"late", "early"}, dueIDs(t, s, "g", t0, 100))
	checkInvariants(t, s)
}

// TestStoreRocksDBDueHintConcurrent runs Due scans of one group while
// saves put due keys below the hints the scans raise: the last Due must
// still return every pending message.
func TestStoreRocksDBDueHintConcurrent(t *testing.T) {
	s := openTest(t, t.TempDir(), Async)
	defer func() { require.NoError(t, s.Close()) }()
	const n = 300
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.Due(context.Background(), "g", t0, 5); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range n {
		m := testMsg(fmt.Sprintf("m-%03d", i), "g")
		// Alternately far in the past and just before now.
		m.Groups[0].NextAttempt = t0.Add(-time.Duration(i%2*n+i) * time.Millisecond)
		b := &store.Batch{Now: t0, Saves: []*store.Message{m}}
		if i%3 == 0 {
			b.Updates = []store.Update{{Op: store.OpAck, Topic: "t", ID: m.ID, Group: "g"}}
		}
		mustWrite(t, s, b)
	}
	close(done)
	wg.Wait()
	require.Len(t, dueIDs(t, s, "g", t0, 2*n), n-n/3)
	checkInvariants(t, s)
}

func TestStoreRocksDBDedupSweep(t *testing.T) {
	s := openTest(t, t.TempDir(), Async)
	defer func() { require.NoError(t, s.Close()) }()
	const n = 3000
	var saves []*store.Message
	for i := range n {
		saves = append(saves, testMsg(fmt.Sprintf("a-%04d", i))) // no group: a dedup entry only
	}
	saves = append(saves, testMsg("z"))
	mustWrite(t, s, &store.Batch{Now: t0, DedupWindow: time.Minute, Saves: saves})
	require.Equal(t, n+1, countKeys(t, s, prefixDedup))
	res := mustWrite(t, s, &store.Batch{Now: t0.Add(59 * time.Second), DedupWindow: time.Minute, Saves: []*store.Message{testMsg("z")}})
	require.True(t, res[0].Duplicate, "in force until t0+1min")
	require.Equal(t, n+1, countKeys(t, s, prefixDedup), "no bucket ended yet")

	// Once the buckets holding them ended, the first write drops every
	// expired entry with one range delete; "z", published again, gets a
	// new entry.
	later := t0.Add(3 * time.Minute)
	res = mustWrite(t, s, &store.Batch{Now: later, DedupWindow: time.Minute, Saves: []*store.Message{testMsg("z")}})
	require.False(t, res[0].Duplicate)
	require.Equal(t, 1, countKeys(t, s, prefixDedup), "only the renewed entry is left")
	res = mustWrite(t, s, &store.Batch{Now: later.Add(time.Second), Saves: []*store.Message{testMsg("z"), testMsg("a-0001")}})
	require.True(t, res[0].Duplicate, "the renewed entry survived the sweep of the old one")
	require.False(t, res[1].Duplicate)
}

// TestStoreRocksDBDedupAcrossBuckets: an entry is found whichever bucket
// its expiry fell in, for windows longer than a bucket too.
func TestStoreRocksDBDedupAcrossBuckets(t *testing.T) {
	s := openTest(t, t.TempDir(), Async)
	defer func() { require.NoError(t, s.Close()) }()
	for i, w := range []time.Duration{time.Second, 90 * time.Second, 10 * time.Minute} {
		id := fmt.Sprintf("w%d", i)
		mustWrite(t, s, &store.Batch{Now: t0, DedupWindow: w, Saves: []*store.Message{testMsg(id)}})
		for _, at := range []time.Duration{0, w / 2, w - time.Nanosecond} {
			res := mustWrite(t, s, &store.Batch{Now: t0.Add(at), DedupWindow: w, Saves: []*store.Message{testMsg(id)}})
			require.True(t, res[0].Duplicate, "window %s, %s later", w, at)
		}
	}
}

func TestStoreRocksDBDuplicateGroupsKeptOnce(t *testing.T) {
	s := openTest(t, t.TempDir(), Async)
	defer func() { require.NoError(t, s.Close()) }()
	m := testMsg("dup", "g", "g", "h")
	mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{m}})
	got, err := s.Get(context.Background(), "t", "dup")
	require.NoError(t, err)
	require.Len(t, got.Groups, 2)
	mustWrite(t, s, &store.Batch{Now: t0, Updates: []store.Update{{Op: store.OpAck, Topic: "t", ID: "dup", Group: "g"}}})
	require.Empty(t, dueIDs(t, s, "g", t0, 10))
	checkInvariants(t, s)
}

func TestStoreRocksDBCancelledContext(t *testing.T) {
	s := openTest(t, t.TempDir(), Async)
	defer func() { require.NoError(t, s.Close()) }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Write(ctx, &store.Batch{Now: t0, Saves: []*store.Message{testMsg("x", "g")}})
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Get(context.Background(), "t", "x")
	require.ErrorIs(t, err, store.ErrNotFound, "an abandoned write before the batch is written applies nothing")
	_, err = s.Due(ctx, "g", t0, 1)
	require.ErrorIs(t, err, context.Canceled)
}

func TestStoreRocksDBUnknownOpIsNoop(t *testing.T) {
	s := openTest(t, t.TempDir(), Async)
	defer func() { require.NoError(t, s.Close()) }()
	res := mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{testMsg("x", "g")},
		Updates: []store.Update{{Op: store.Op(99), Topic: "t", ID: "x", Group: "g"}}})
	require.Len(t, res, 1)
	require.Equal(t, []string{"x"}, dueIDs(t, s, "g", t0, 10))
	checkInvariants(t, s)
}

// TestStoreRocksDBDeferredDue: a state not due yet when written (a lease)
// gets no "d" key but is due from memory at its time, through a reopen
// (which writes its key), and leaves nothing when acked.
func TestStoreRocksDBDeferredDue(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	m := testMsg("lease", "g")
	m.Groups[0].NextAttempt = t0.Add(10 * time.Second)
	due := testMsg("now", "g") // due at once: written to the index
	mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{m, due}})
	require.Equal(t, 1, countKeys(t, s, prefixDue), "only the state due at once has a key")
	require.Equal(t, 1, s.deferred.size())
	require.Equal(t, []string{"now"}, dueIDs(t, s, "g", t0.Add(5*time.Second), 10))
	require.Equal(t, []string{"now", "lease"}, dueIDs(t, s, "g", t0.Add(11*time.Second), 10))
	require.Equal(t, []string{"now"}, dueIDs(t, s, "g", t0.Add(11*time.Second), 1), "earliest first")
	checkInvariants(t, s)
	require.NoError(t, s.Close())

	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	require.Zero(t, s.deferred.size())
	require.Equal(t, 2, countKeys(t, s, prefixDue), "Open wrote the deferred key")
	require.Equal(t, []string{"now", "lease"}, dueIDs(t, s, "g", t0.Add(11*time.Second), 10))
	checkInvariants(t, s)

	// A retry defers again; the ack then drops the deferred key without a
	// write, and the record and the old key go.
	mustWrite(t, s, &store.Batch{Now: t0, Updates: []store.Update{{Op: store.OpRetry, Topic: "t", ID: "lease", Group: "g", Attempts: 1, Next: t0.Add(time.Minute)}}})
	require.Equal(t, 1, countKeys(t, s, prefixDue))
	require.Equal(t, 1, s.deferred.size())
	checkInvariants(t, s)
	mustWrite(t, s, &store.Batch{Now: t0, Updates: []store.Update{
		{Op: store.OpAck, Topic: "t", ID: "lease", Group: "g"},
		{Op: store.OpAck, Topic: "t", ID: "now", Group: "g"},
	}})
	require.Zero(t, s.deferred.size())
	require.Zero(t, countKeys(t, s, prefixDue))
	require.Empty(t, dueIDs(t, s, "g", t0.Add(time.Hour), 10))
	checkInvariants(t, s)
}
