package rocksdb

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// TestBloomNoFalseNegatives: every key added is reported, across block
// growth, and keys never added rarely are.
func TestBloomNoFalseNegatives(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 4))
	var b bloom
	const n = 100_000 // several blocks
	added := make([]uint64, n)
	for i := range added {
		added[i] = r.Uint64()
		b.add(added[i])
	}
	require.Greater(t, len(b.blocks), 3)
	for _, h := range added {
		require.True(t, b.mayHave(h))
	}
	fp := 0
	const probes = 100_000
	for range probes {
		if b.mayHave(r.Uint64()) {
			fp++
		}
	}
	// Each block answers "maybe" for under 1 % of strangers; a chain of
	// blocks adds them up.
	require.Less(t, float64(fp)/probes, 0.05, "%d false maybes in %d", fp, probes)
}

// TestStoreRocksDBDedupFilters: the filters find entries written before a
// reopen, and go with their buckets.
func TestStoreRocksDBDedupFilters(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	var saves []*store.Message
	for i := range 1000 {
		saves = append(saves, testMsg(fmt.Sprintf("id-%04d", i)))
	}
	mustWrite(t, s, &store.Batch{Now: t0, DedupWindow: 2 * time.Minute, Saves: saves})
	require.NoError(t, s.Close())

	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	require.Len(t, s.filters.buckets, 1, "Open loaded the bucket on disk")
	res := mustWrite(t, s, &store.Batch{Now: t0.Add(time.Minute), DedupWindow: 2 * time.Minute,
		Saves: []*store.Message{testMsg("id-0000"), testMsg("id-0999"), testMsg("new")}})
	require.True(t, res[0].Duplicate, "an entry from before the reopen")
	require.True(t, res[1].Duplicate)
	require.False(t, res[2].Duplicate)

	// Past the window the buckets, and their filters, are dropped.
	mustWrite(t, s, &store.Batch{Now: t0.Add(10 * time.Minute)})
	require.Empty(t, s.filters.buckets)
	res = mustWrite(t, s, &store.Batch{Now: t0.Add(10 * time.Minute), Saves: []*store.Message{testMsg("id-0000")}})
	require.False(t, res[0].Duplicate)
}
