package rocksdb

import (
	"strconv"
	"testing"
	"time"

	"github.com/linxGnu/grocksdb"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// TestStoreRocksDBMigratesFormat1 writes a format 1 directory by hand
// (dedup entries under "u" with their "x" expiry index) and opens it: the
// entries still in force keep deduplicating, the old keys are gone and the
// directory says format 2.
func TestStoreRocksDBMigratesFormat1(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	m := testMsg("kept", "g")
	mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{m}})

	now := time.Now()
	wb := grocksdb.NewWriteBatch()
	live, dead := timeKey(now.Add(30*time.Second)), timeKey(now.Add(-time.Hour))
	for _, e := range []struct {
		id    string
		until uint64
	}{{"live", live}, {"dead", dead}} {
		wb.Put(key(prefixDedupV1, "t", e.id), encodeDedup(e.until, 7))
		b := appendU64([]byte{prefixDedupExpV1}, e.until)
		wb.Put(appendStr(appendStr(b, "t"), e.id), nil)
	}
	wb.Put(key(prefixDedupV1, "t", "\x00odd\x00"), encodeDedup(live, 8))
	wb.Put(metaKey(), []byte("1"))
	require.NoError(t, s.db.Write(s.wo, wb))
	wb.Destroy()
	require.NoError(t, s.Close())

	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	require.Zero(t, countKeys(t, s, prefixDedupV1))
	require.Zero(t, countKeys(t, s, prefixDedupExpV1))
	v, err := s.db.GetBytes(s.ro, metaKey())
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(formatVersion), string(v))

	res := mustWrite(t, s, &store.Batch{Now: now, Saves: []*store.Message{testMsg("live"), testMsg("dead"), testMsg("\x00odd\x00")}})
	require.True(t, res[0].Duplicate, "an entry in force survives the migration")
	require.Equal(t, uint64(7), res[0].Seq)
	require.False(t, res[1].Duplicate, "an expired one is not copied")
	require.True(t, res[2].Duplicate, "ids with zero bytes too")
	got, err := s.Get(t.Context(), "t", "kept")
	require.NoError(t, err)
	require.Equal(t, m.Body, got.Body, "messages are untouched")
	checkInvariants(t, s)
}
