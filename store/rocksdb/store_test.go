package rocksdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the tests' clock origin.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openTest opens a small store in dir that the caller closes.
func openTest(t testing.TB, dir string, d Durability) *Store {
	t.Helper()
	return openTestConfig(t, Config{Dir: dir, Durability: d})
}

// openTestConfig opens a small store with cfg that the caller closes.
func openTestConfig(t testing.TB, cfg Config) *Store {
	t.Helper()
	cfg.SyncInterval, cfg.BlockCacheSize, cfg.WriteBufferSize, cfg.Logger = 10*time.Millisecond, 8<<20, 4<<20, testLogger(t)
	s, err := Open(cfg)
	require.NoError(t, err)
	return s
}

func TestStoreConformanceRocksDB(t *testing.T) {
	storetest.Run(t, conformanceFactory(Config{}))
}

// TestStoreConformanceRocksDBJournal runs the suite with a journal that
// rotates at nearly every Write, and with a Close that, like a crash,
// leaves RocksDB's memtables unflushed: every reopen has to rebuild the
// state from the tables and the journal.
func TestStoreConformanceRocksDBJournal(t *testing.T) {
	storetest.Run(t, conformanceFactory(Config{JournalSegmentSize: 512, noFlushOnClose: true}))
}

func conformanceFactory(cfg Config) storetest.Factory {
	return storetest.Factory{
		New: func(t testing.TB) (store.Store, func() store.Store) {
			cfg := cfg
			cfg.Dir = t.TempDir()
			cur := openTestConfig(t, cfg)
			t.Cleanup(func() {
				checkInvariants(t, cur)
				require.NoError(t, cur.Close())
			})
			reopen := func() store.Store {
				checkInvariants(t, cur)
				require.NoError(t, cur.Close())
				cur = openTestConfig(t, cfg)
				return cur
			}
			return cur, reopen
		},
	}
}

// testMsg returns a committed message of topic "t", pending for each group
// at t0.
func testMsg(id string, groups ...string) *store.Message {
	m := &store.Message{
		Topic: "t", ID: id, MessageType: "mt", Group: "p", BodyType: store.BodyBytes,
		Body: []byte("body-" + id), Created: t0, DeliverLimit: 10, Seq: 1,
	}
	for _, g := range groups {
		m.Groups = append(m.Groups, store.GroupState{Group: g, NextAttempt: t0})
	}
	return m
}

func mustWrite(t testing.TB, s *Store, b *store.Batch) []store.SaveResult {
	t.Helper()
	if b.DedupWindow == 0 {
		b.DedupWindow = time.Minute
	}
	res, err := s.Write(context.Background(), b)
	require.NoError(t, err)
	return res
}

func dueIDs(t testing.TB, s *Store, group string, now time.Time, limit int) []string {
	t.Helper()
	ms, err := s.Due(context.Background(), group, now, limit)
	require.NoError(t, err)
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

// midWriteBatch is batch k of writer w: it saves 8 messages and, from the
// second batch on, acks 4 messages of the previous batch and retries the
// other 4 with k attempts.
func midWriteBatch(w, k int) *store.Batch {
	b := &store.Batch{Now: t0, DedupWindow: time.Hour}
	for i := range 8 {
		b.Saves = append(b.Saves, testMsg(midID(w, k, i), "g"))
	}
	for i := 0; k > 0 && i < 8; i++ {
		u := store.Update{Op: store.OpAck, Topic: "t", ID: midID(w, k-1, i), Group: "g"}
		if i >= 4 {
			u.Op, u.Attempts, u.Next = store.OpRetry, k, t0.Add(time.Duration(k)*time.Second)
		}
		b.Updates = append(b.Updates, u)
	}
	return b
}

func midID(w, k, i int) string { return fmt.Sprintf("%02d-%06d-%d", w, k, i) }

// requireMidWrites checks the state that n acknowledged batches of writer
// w leave, and that batch n (refused) left nothing.
func requireMidWrites(t *testing.T, s *Store, w, n int) {
	t.Helper()
	ctx := context.Background()
	for k := 0; k <= n; k++ {
		for i := range 8 {
			m, err := s.Get(ctx, "t", midID(w, k, i))
			switch {
			case k == n || (k < n-1 && i < 4):
				require.ErrorIs(t, err, store.ErrNotFound, "writer %d batch %d msg %d of %d", w, k, i, n)
			case k == n-1:
				require.NoError(t, err)
				require.Equal(t, 0, m.Groups[0].Attempts)
			default:
				require.NoError(t, err)
				require.Equal(t, k+1, m.Groups[0].Attempts, "writer %d batch %d msg %d", w, k, i)
			}
		}
	}
}

func TestStoreRocksDBCloseMidWrite(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	const writers = 4
	var acked [writers]atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				if _, err := s.Write(context.Background(), midWriteBatch(w, k)); err != nil {
					if !errors.Is(err, store.ErrClosed) {
						t.Errorf("writer %d batch %d: %v", w, k, err)
					}
					return
				}
				acked[w].Store(int64(k + 1))
			}
		}()
	}
	waitFor(t, 20*time.Second, func() bool {
		for w := range writers {
			if acked[w].Load() < 10 {
				return false
			}
		}
		return true
	})
	require.NoError(t, s.Close())
	wg.Wait()

	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	checkInvariants(t, s)
	var pending int64
	for w := range writers {
		n := int(acked[w].Load())
		requireMidWrites(t, s, w, n)
		pending += int64(4*(n-1) + 8)
	}
	st, err := s.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, []store.GroupStat{{Topic: "t", Group: "g", Pending: pending}}, st.Groups)
	require.Len(t, dueIDs(t, s, "g", t0.Add(24*time.Hour), int(pending)+10), int(pending))
}

func TestStoreRocksDBSyncReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Sync)
	require.True(t, s.wo.IsSync(), "sync mode syncs every write")
	for k := range 5 {
		mustWrite(t, s, midWriteBatch(0, k))
	}
	p := testMsg("prepared")
	p.Prepared, p.NextCheck = true, t0.Add(time.Second)
	mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{p}, Updates: []store.Update{
		{Op: store.OpDead, Topic: "t", ID: midID(0, 4, 0), Group: "g", Reason: "term"},
	}})
	require.NoError(t, s.SaveBindings(context.Background(), "g", []byte("doc")))
	want, err := s.Stats(context.Background())
	require.NoError(t, err)
	before := logicalState(t, s)
	require.NotZero(t, s.deferred.size(), "the leases of the batches are deferred")
	require.NoError(t, s.Close())

	s = openTest(t, dir, Sync)
	defer func() { require.NoError(t, s.Close()) }()
	checkInvariants(t, s)
	got, err := s.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Zero(t, s.deferred.size())
	require.Equal(t, before, readState(t, s), "every key survives; Open wrote the deferred due keys")
	require.Len(t, before.dead, 1)
	checks, err := s.DueChecks(context.Background(), t0.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	docs, err := s.LoadBindings(context.Background())
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"g": []byte("doc")}, docs)
}
