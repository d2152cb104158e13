package rocksdb

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// journalRecord returns one framed record holding ops.
func journalRecord(ops ...op) []byte {
	rec := make([]byte, recordHeader)
	for _, o := range ops {
		rec = o.appendTo(rec)
	}
	return frame(rec)
}

// frame fills in the header of rec, as journal.append does.
func frame(rec []byte) []byte {
	dir, err := os.MkdirTemp("", "frame")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	j, err := openJournal(dir, 1)
	if err != nil {
		panic(err)
	}
	defer func() { _ = j.close() }()
	if err := j.append(rec, false); err != nil {
		panic(err)
	}
	return rec
}

func TestJournalRecordRoundTrip(t *testing.T) {
	ops := []op{
		{kind: opPut, k: []byte("m\x00k"), v: []byte("value")},
		{kind: opPut, k: []byte("d"), v: []byte{}},
		{kind: opDelete, k: []byte("m\x00j")},
		{kind: opDeleteRange, k: []byte("w"), v: []byte("w\xff")},
	}
	seg := append([]byte(journalMagic), journalRecord(ops...)...)
	seg = append(seg, journalRecord(ops[2])...)
	var got [][]op
	require.NoError(t, readSegment(seg, func(o []op) error {
		got = append(got, append([]op(nil), o...))
		return nil
	}))
	require.Len(t, got, 2)
	require.Len(t, got[0], 4)
	for i, o := range ops {
		require.Equal(t, o.kind, got[0][i].kind)
		require.Equal(t, string(o.k), string(got[0][i].k))
		require.Equal(t, string(o.v), string(got[0][i].v))
	}
	require.Equal(t, "m\x00j", string(got[1][0].k))
	// The kinds on disk are part of the format.
	for kind, b := range map[opKind]byte{opPut: 1, opDelete: 2, opDeleteRange: 3} {
		require.Equal(t, b, journalRecord(op{kind: kind, k: []byte("k")})[recordHeader], "kind %d", kind)
	}
}

// TestJournalReadSegmentDamage: a record cut short or failing its checksum
// is torn (what a crash leaves at the end); the records before it are
// still read; a bad op inside a record that passes its checksum is not
// torn but malformed.
func TestJournalReadSegmentDamage(t *testing.T) {
	good := journalRecord(op{kind: opPut, k: []byte("a"), v: []byte("1")})
	second := journalRecord(op{kind: opPut, k: []byte("b"), v: []byte("2")})
	base := append([]byte(journalMagic), good...)
	flipped := append(append([]byte(nil), base...), second...)
	flipped[len(flipped)-1] ^= 0xFF
	cases := map[string][]byte{
		"header cut":    append(append([]byte(nil), base...), second[:5]...),
		"payload cut":   append(append([]byte(nil), base...), second[:len(second)-1]...),
		"checksum":      flipped,
		"huge length":   append(append([]byte(nil), base...), 0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0),
		"magic cut":     []byte(journalMagic[:3]),
		"not a segment": []byte("NOTAJRNL"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			var n int
			err := readSegment(data, func([]op) error { n++; return nil })
			require.Error(t, err)
			if name == "not a segment" {
				require.NotErrorIs(t, err, errTorn)
				return
			}
			require.ErrorIs(t, err, errTorn)
			if len(data) > len(base) {
				require.Equal(t, 1, n, "the record before the damage was read")
			}
		})
	}
	bad := make([]byte, recordHeader)
	bad = append(bad, 9, 1, 'k') // op kind 9
	bad = frame(bad)
	err := readSegment(append([]byte(journalMagic), bad...), func([]op) error { return nil })
	require.ErrorIs(t, err, errBadRecord)
	require.NotErrorIs(t, err, errTorn)
}

// TestStoreRocksDBJournalRecoversLostMemtables: a Close that leaves the
// memtables unflushed loses what a crash loses; reopening replays the
// journal and finds every acknowledged write, with the journal rotating
// (records moved to RocksDB, flushed, segments deleted) or not.
func TestStoreRocksDBJournalRecoversLostMemtables(t *testing.T) {
	for _, seg := range []int64{0, 4 << 10} {
		dir := t.TempDir()
		cfg := Config{Dir: dir, JournalSegmentSize: seg, noFlushOnClose: true}
		s := openTestConfig(t, cfg)
		const n = 60
		for k := range n {
			mustWrite(t, s, midWriteBatch(0, k))
		}
		checkInvariants(t, s)
		want := logicalState(t, s)
		require.NoError(t, s.Close())
		if seg > 0 {
			segs, err := listSegments(filepath.Join(dir, journalDirName))
			require.NoError(t, err)
			require.Less(t, len(segs), n/4, "segment size %d: old segments were deleted", seg)
		}
		s = openTestConfig(t, cfg)
		checkInvariants(t, s)
		require.Equal(t, want, logicalState(t, s), "segment size %d", seg)
		requireMidWrites(t, s, 0, n)
		require.NoError(t, s.Close())
	}
}

// TestStoreRocksDBJournalTornTail: bytes of a record a crash cut short at
// the end of the last segment are dropped at Open; a damaged record in an
// earlier segment makes Open fail rather than lose what follows it.
func TestStoreRocksDBJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, noFlushOnClose: true} // the journal stays
	s := openTestConfig(t, cfg)
	for k := range 5 {
		mustWrite(t, s, midWriteBatch(0, k))
	}
	require.NoError(t, s.Close())
	jdir := filepath.Join(dir, journalDirName)
	segs, err := listSegments(jdir)
	require.NoError(t, err)
	require.Len(t, segs, 1)
	last := filepath.Join(jdir, segmentName(segs[0]))
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5}) // a 200-byte record, 1 byte of it
	require.NoError(t, err)
	require.NoError(t, f.Close())

	s = openTestConfig(t, cfg)
	checkInvariants(t, s)
	requireMidWrites(t, s, 0, 5)
	mustWrite(t, s, midWriteBatch(0, 5))
	require.NoError(t, s.Close())

	// Damage the first record of the older of two segments.
	segs, err = listSegments(jdir)
	require.NoError(t, err)
	require.Len(t, segs, 1)
	next := filepath.Join(jdir, segmentName(segs[0]+1))
	require.NoError(t, os.WriteFile(next, []byte(journalMagic), 0o640))
	data, err := os.ReadFile(filepath.Join(jdir, segmentName(segs[0])))
	require.NoError(t, err)
	data[len(journalMagic)+recordHeader] ^= 0xFF
	require.NoError(t, os.WriteFile(filepath.Join(jdir, segmentName(segs[0])), data, 0o640))
	_, err = Open(Config{Dir: dir, Logger: testLogger(t)})
	require.ErrorContains(t, err, "journal")
	require.ErrorContains(t, err, segmentName(segs[0]))
}

// TestStoreRocksDBFailedJournalFailsWrites: once a journal append fails
// and the journal cannot be cut back (here: its file is closed), every
// later Write fails too (nothing acknowledged may follow a torn record),
// and a reopen recovers what was acknowledged before.
func TestStoreRocksDBFailedJournalFailsWrites(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	mustWrite(t, s, midWriteBatch(0, 0))
	require.NoError(t, s.jrnl.f.Close()) // the next append fails
	_, err := s.Write(context.Background(), midWriteBatch(0, 1))
	require.ErrorContains(t, err, "journal append")
	_, err = s.Write(context.Background(), &store.Batch{Now: t0})
	require.ErrorContains(t, err, "refuses writes")
	require.ErrorContains(t, s.Failed(), "journal append", "the store says it failed")
	require.Error(t, s.Close(), "the journal was already closed")
	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	requireMidWrites(t, s, 0, 1)
}

// TestStoreRocksDBRetiresSegments: under steady writes the journal keeps
// only the segments since the last rotation.
func TestStoreRocksDBRetiresSegments(t *testing.T) {
	dir := t.TempDir()
	s := openTestConfig(t, Config{Dir: dir, JournalSegmentSize: 2 << 10})
	defer func() { require.NoError(t, s.Close()) }()
	for k := range 100 {
		mustWrite(t, s, midWriteBatch(0, k))
	}
	require.Eventually(t, func() bool {
		segs, err := listSegments(filepath.Join(dir, journalDirName))
		return err == nil && len(segs) <= 2
	}, 10*time.Second, 10*time.Millisecond, "old segments are deleted once RocksDB is flushed")
	checkInvariants(t, s)
}

func FuzzJournalSegment(f *testing.F) {
	f.Add(append([]byte(journalMagic), journalRecord(op{kind: opPut, k: []byte("m"), v: []byte("v")}, op{kind: opDelete, k: []byte("d")})...))
	f.Add([]byte(journalMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = readSegment(data, func(ops []op) error {
			for _, o := range ops {
				if o.kind > opDeleteRange {
					t.Fatalf("op kind %d passed", o.kind)
				}
			}
			return nil
		})
	})
}

// TestStoreRocksDBHotRecordsBounded: records nobody acks (a backlog) move
// to RocksDB once the map holds a quarter of a segment, so the memory they
// take stays bounded, and they read the same afterwards.
func TestStoreRocksDBHotRecordsBounded(t *testing.T) {
	const seg = 64 << 10
	s := openTestConfig(t, Config{Dir: t.TempDir(), JournalSegmentSize: seg})
	defer func() { require.NoError(t, s.Close()) }()
	moved := false
	for k := range 200 {
		b := &store.Batch{Now: t0}
		for i := range 8 {
			b.Saves = append(b.Saves, testMsg(midID(1, k, i), "offline"))
		}
		mustWrite(t, s, b)
		if k > 0 && s.hot.len() < 8 {
			moved = true
		}
		require.Less(t, s.hot.bytes, seg/4+4<<10, "batch %d", k)
	}
	require.True(t, moved, "the records moved to RocksDB")
	checkInvariants(t, s)
	m, err := s.Get(context.Background(), "t", midID(1, 0, 0))
	require.NoError(t, err)
	require.Equal(t, "body-"+midID(1, 0, 0), string(m.Body))
	due, err := s.Due(context.Background(), "offline", t0, 10_000)
	require.NoError(t, err)
	require.Len(t, due, 1600)
}

// TestStoreRocksDBJournalSurvivesFailedAppend: a write that fails half way
// (a full disk) fails its Write alone; the segment is cut back to where
// the record began, later Writes succeed, and a reopen replays them all.
func TestStoreRocksDBJournalSurvivesFailedAppend(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	mustWrite(t, s, midWriteBatch(0, 0))
	s.jrnl.write = func(f *os.File, b []byte) (int, error) {
		n, _ := f.Write(b[:len(b)/2])
		return n, syscall.ENOSPC
	}
	_, err := s.Write(context.Background(), midWriteBatch(0, 1))
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.NotContains(t, err.Error(), "refuses writes")
	require.NoError(t, s.Failed())
	s.jrnl.write = (*os.File).Write
	mustWrite(t, s, midWriteBatch(0, 1))
	mustWrite(t, s, midWriteBatch(0, 2))
	requireMidWrites(t, s, 0, 3)
	require.NoError(t, s.Close())
	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	checkInvariants(t, s)
	requireMidWrites(t, s, 0, 3)
}

// TestStoreRocksDBCleanCloseLeavesNoJournal: a clean Close moves the held
// records to RocksDB, flushes it and deletes the journal, so the next Open
// replays nothing and finds everything.
func TestStoreRocksDBCleanCloseLeavesNoJournal(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	for k := range 10 {
		mustWrite(t, s, midWriteBatch(0, k))
	}
	require.Positive(t, s.hot.len(), "records are held in memory")
	want := logicalState(t, s)
	require.NoError(t, s.Close())
	segs, err := listSegments(filepath.Join(dir, journalDirName))
	require.NoError(t, err)
	require.Empty(t, segs)
	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	checkInvariants(t, s)
	require.Equal(t, want, logicalState(t, s))
	requireMidWrites(t, s, 0, 10)
}

// TestStoreRocksDBFailedSyncFailsStore: when the syncer's sync fails, the
// store says so at once (for /healthz) and refuses writes; a reopen
// recovers what was acknowledged.
func TestStoreRocksDBFailedSyncFailsStore(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	mustWrite(t, s, midWriteBatch(0, 0))
	s.jrnl.mu.Lock()
	require.NoError(t, s.jrnl.f.Close()) // the next sync fails
	s.jrnl.dirty = true
	s.jrnl.mu.Unlock()
	require.Eventually(t, func() bool { return s.Failed() != nil }, 5*time.Second, 5*time.Millisecond)
	require.ErrorContains(t, s.Failed(), "journal sync")
	_, err := s.Write(context.Background(), midWriteBatch(0, 1))
	require.ErrorContains(t, err, "refuses writes")
	require.Error(t, s.Close(), "the journal was already closed")
	s = openTest(t, dir, Async)
	defer func() { require.NoError(t, s.Close()) }()
	requireMidWrites(t, s, 0, 1)
}

// TestStoreRocksDBObserveSync: ObserveSync times every journal fsync: one
// per Write in Sync mode, one per interval that had writes in Async mode,
// none for an interval without writes.
func TestStoreRocksDBObserveSync(t *testing.T) {
	var n atomic.Int64
	observe := func(d time.Duration) {
		if d < 0 {
			t.Errorf("negative fsync duration %v", d)
		}
		n.Add(1)
	}
	s := openTestConfig(t, Config{Dir: t.TempDir(), Durability: Sync, ObserveSync: observe})
	for k := range 3 {
		mustWrite(t, s, midWriteBatch(0, k))
	}
	require.EqualValues(t, 3, n.Load(), "one fsync per write")
	require.NoError(t, s.Close())

	n.Store(0)
	s = openTestConfig(t, Config{Dir: t.TempDir(), Durability: Async, ObserveSync: observe})
	defer func() { require.NoError(t, s.Close()) }()
	mustWrite(t, s, midWriteBatch(0, 0))
	require.Eventually(t, func() bool { return n.Load() == 1 }, 5*time.Second, 5*time.Millisecond, "the interval's sync")
	time.Sleep(50 * time.Millisecond) // five more intervals, no writes
	require.EqualValues(t, 1, n.Load(), "nothing written, nothing synced")
}
