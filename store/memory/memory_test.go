package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
	"github.com/kitenats/kitenats/store/storetest"
)

func TestStoreConformanceMemory(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		New: func(t testing.TB) (store.Store, func() store.Store) {
			s := memory.New(memory.Config{})
			t.Cleanup(func() { _ = s.Close() })
			return s, nil
		},
	})
}

func TestStoreMemoryRefusesWhenFullAndNeverEvicts(t *testing.T) {
	s := memory.New(memory.Config{MaxMessages: 2})
	now := time.Now()
	mk := func(id string) *store.Message {
		return &store.Message{Topic: "t", ID: id, Groups: []store.GroupState{{Group: "g", NextAttempt: now}}}
	}
	res, err := s.Write(context.Background(), &store.Batch{Now: now, Saves: []*store.Message{mk("1"), mk("2"), mk("3")}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.NoError(t, res[1].Err)
	require.ErrorIs(t, res[2].Err, store.ErrFull)
	for _, id := range []string{"1", "2"} {
		_, err := s.Get(context.Background(), "t", id)
		require.NoError(t, err, "nothing was evicted")
	}
	// Room comes back once a message is acknowledged.
	res, err = s.Write(context.Background(), &store.Batch{Now: now,
		Updates: []store.Update{{Op: store.OpAck, Topic: "t", ID: "1", Group: "g"}}})
	require.NoError(t, err)
	require.Empty(t, res)
	res, err = s.Write(context.Background(), &store.Batch{Now: now, Saves: []*store.Message{mk("3")}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
}

func TestStoreMemoryByteBound(t *testing.T) {
	s := memory.New(memory.Config{MaxBytes: 1000})
	now := time.Now()
	big := &store.Message{Topic: "t", ID: "1", Body: make([]byte, 2000), Groups: []store.GroupState{{Group: "g"}}}
	res, err := s.Write(context.Background(), &store.Batch{Now: now, Saves: []*store.Message{big}})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, store.ErrFull)
}

// TestStoreMemoryDedupBounded: publishes that are not stored (no group),
// each with a new id, keep a dedup entry each, at most MaxMessages of them:
// the oldest are forgotten first, the newest still caught.
func TestStoreMemoryDedupBounded(t *testing.T) {
	s := memory.New(memory.Config{MaxMessages: 100})
	now := time.Now()
	for i := range 1000 {
		res, err := s.Write(context.Background(), &store.Batch{Now: now, DedupWindow: time.Hour,
			Saves: []*store.Message{{Topic: "t", ID: fmt.Sprint(i), Seq: uint64(i) + 1}}})
		require.NoError(t, err)
		require.NoError(t, res[0].Err)
		require.False(t, res[0].Duplicate)
	}
	res, err := s.Write(context.Background(), &store.Batch{Now: now, DedupWindow: time.Hour, Saves: []*store.Message{
		{Topic: "t", ID: "999", Seq: 5000}, {Topic: "t", ID: "0", Seq: 5001},
	}})
	require.NoError(t, err)
	require.True(t, res[0].Duplicate, "a recent id is still caught")
	require.EqualValues(t, 1000, res[0].Seq)
	require.False(t, res[1].Duplicate, "the oldest ids were forgotten")
}
