package memory_test

import (
	"context"
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
