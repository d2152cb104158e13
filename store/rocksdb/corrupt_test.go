package rocksdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// logBuffer collects a Store's log lines, and passes them to t.
type logBuffer struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// recordOffsets returns the offset of each record of a segment.
func recordOffsets(t *testing.T, data []byte) []int {
	t.Helper()
	var offs []int
	for off := len(journalMagic); off < len(data); {
		offs = append(offs, off)
		off += recordHeader + int(binary.LittleEndian.Uint32(data[off:]))
	}
	return offs
}

// TestStoreRocksDBJournalBitFlip flips a bit in the middle of a journal
// segment, in a record's payload and then in a record's length: Open
// skips that record alone, names the segment, the offset and the
// messages the record saved in an error line, counts it, keeps the
// segment as .damaged, and replays every record before and after it: the
// acks the skipped record held come back as pending messages (delivered
// again, never lost).
func TestStoreRocksDBJournalBitFlip(t *testing.T) {
	for _, where := range []string{"payload", "length"} {
		t.Run(where, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, noFlushOnClose: true} // the journal stays
			s := openTestConfig(t, cfg)
			const n = 20
			for k := range n {
				mustWrite(t, s, midWriteBatch(0, k))
			}
			require.NoError(t, s.Close())
			jdir := filepath.Join(dir, journalDirName)
			segs, err := listSegments(jdir)
			require.NoError(t, err)
			require.Len(t, segs, 1)
			name := filepath.Join(jdir, segmentName(segs[0]))
			data, err := os.ReadFile(name)
			require.NoError(t, err)
			offs := recordOffsets(t, data)
			require.Len(t, offs, n, "one record per batch")
			const bad = 10
			if where == "payload" {
				data[offs[bad]+recordHeader+40] ^= 0x04
			} else {
				data[offs[bad]+1] ^= 0x04
			}
			require.NoError(t, os.WriteFile(name, data, 0o640))

			logs := &logBuffer{t: t}
			cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
			cfg.SyncInterval, cfg.BlockCacheSize, cfg.WriteBufferSize = 10e6, 8<<20, 4<<20
			s, err = Open(cfg)
			require.NoError(t, err)
			defer func() { require.NoError(t, s.Close()) }()
			require.EqualValues(t, 1, s.Condition().CorruptRecords)
			require.FileExists(t, name+".damaged")
			line := logs.String()
			require.Contains(t, line, "level=ERROR")
			require.Contains(t, line, "segment="+name)
			require.Contains(t, line, "offset="+strconv.Itoa(offs[bad]))
			if where == "payload" {
				require.Contains(t, line, "t/"+midID(0, bad, 0), "the record's messages are named")
				require.Contains(t, line, "messages_written=")
				require.NotContains(t, line, "messages_written=0 ")
			}
			ctx := context.Background()
			for i := range 4 { // acked in the skipped batch: pending again
				_, err := s.Get(ctx, "t", midID(0, bad-1, i))
				require.NoError(t, err, "ack of %s skipped: the message is back", midID(0, bad-1, i))
			}
			for i := range 8 { // saved after the damage
				_, err := s.Get(ctx, "t", midID(0, n-1, i))
				require.NoError(t, err)
			}
			for i := range 4 { // saved and acked before it
				_, err := s.Get(ctx, "t", midID(0, 3, i))
				require.ErrorIs(t, err, store.ErrNotFound)
			}
			mustWrite(t, s, midWriteBatch(0, n))
		})
	}
}

// TestStoreRocksDBCorruptTable flips a byte in the middle of a RocksDB
// table: Open fails with one error that says the table is damaged, names
// the file and says how to recover.
func TestStoreRocksDBCorruptTable(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Async)
	for i := range 2000 {
		mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(i)}})
	}
	require.NoError(t, s.Close()) // a clean close: everything in tables
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	var biggest string
	var size int64
	for _, f := range tables {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		if fi.Size() > size {
			biggest, size = f, fi.Size()
		}
	}
	data, err := os.ReadFile(biggest)
	require.NoError(t, err)
	data[len(data)/2] ^= 0x01
	require.NoError(t, os.WriteFile(biggest, data, 0o640))

	_, err = Open(Config{Dir: dir, Logger: testLogger(t)})
	require.Error(t, err)
	t.Log(err)
	require.Contains(t, err.Error(), biggest)
	require.Contains(t, err.Error(), "Corruption")
	require.Contains(t, err.Error(), "damaged")
	require.NotContains(t, err.Error(), "\n")
}
