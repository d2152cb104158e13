package rocksdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// mountTmpfs mounts a tmpfs of size bytes in a temporary directory and
// unmounts it at cleanup (after the caller's own cleanups, which close the
// store). Where mounting is not permitted it skips, or fails when CI is
// set.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the disk-full tests (they mount a tmpfs, as root): %v", err)
		}
		t.Skipf("skipping: mounting a tmpfs needs root: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// diskMsg is a message of topic "t" with a 4 KiB body that does not
// compress, pending for "g".
func diskMsg(i int) *store.Message {
	m := testMsg(fmt.Sprintf("%032x", i), "g")
	m.Body = make([]byte, 4<<10)
	_, _ = rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16)}).Read(m.Body)
	m.Seq = uint64(i) + 1 //nolint:gosec // small
	return m
}

// fillUntilRefused saves messages in batches of 64 until a save is
// refused, and returns the ids accepted.
func fillUntilRefused(t *testing.T, s *Store) []string {
	t.Helper()
	var ids []string
	for i := 0; ; {
		b := &store.Batch{Now: t0, DedupWindow: time.Minute}
		for range 64 {
			b.Saves = append(b.Saves, diskMsg(i))
			i++
		}
		res, err := s.Write(context.Background(), b)
		if err != nil {
			require.ErrorIs(t, err, store.ErrNoSpace)
			return ids
		}
		for j, r := range res {
			if r.Err != nil {
				require.ErrorIs(t, r.Err, store.ErrNoSpace)
				return ids
			}
			ids = append(ids, b.Saves[j].ID)
		}
		require.Less(t, i, 1<<20, "never refused")
	}
}

// ackAll acks ids for "g" in batches; every write must succeed.
func ackAll(t *testing.T, s *Store, ids []string) {
	t.Helper()
	for len(ids) > 0 {
		n := min(len(ids), 256)
		b := &store.Batch{Now: t0}
		for _, id := range ids[:n] {
			b.Updates = append(b.Updates, store.Update{Op: store.OpAck, Topic: "t", ID: id, Group: "g"})
		}
		mustWrite(t, s, b)
		ids = ids[n:]
	}
}

// waitRoom waits until the store takes new messages again.
func waitRoom(t *testing.T, s *Store, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for s.NoSpace() != nil {
		require.Less(t, time.Since(start), within, "still out of space: %v; %+v", s.NoSpace(), s.Condition())
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestStoreRocksDBDiskFull fills a 96 MiB tmpfs: new messages are refused
// at the reserve while acks are still written; once everything is acked
// the journal retires, the space comes back and saves are taken again,
// without a reopen.
func TestStoreRocksDBDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 96<<20)
	cfg := Config{Dir: filepath.Join(mnt, "data"), JournalSegmentSize: 2 << 20, MinFreeSpace: 16 << 20}
	s := openTestConfig(t, cfg)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	ids := fillUntilRefused(t, s)
	c := s.Condition()
	t.Logf("refused after %d messages: %v; free %s of %s, journal %s", len(ids), c.NoSpace, mib(c.DiskFree), mib(c.DiskSize), mib(c.JournalBytes))
	require.ErrorIs(t, c.NoSpace, store.ErrNoSpace)
	require.Contains(t, c.NoSpace.Error(), "minFree")
	require.NoError(t, c.Failed)
	require.Greater(t, len(ids), 1000)

	ackAll(t, s, ids)
	acked := time.Now()
	took := waitRoom(t, s, 30*time.Second)
	// spaceLoop gives space back until pressedBelow reserves are free.
	for c = s.Condition(); c.DiskFree < pressedBelow*cfg.MinFreeSpace; c = s.Condition() {
		require.Less(t, time.Since(acked), 30*time.Second, "the acked messages' space did not come back: %+v", c)
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("room again %v after the last ack; %v later free %s, journal %s", took, time.Since(acked), mib(c.DiskFree), mib(c.JournalBytes))
	require.NoError(t, c.Failed)
	require.LessOrEqual(t, c.JournalBytes, 2*cfg.JournalSegmentSize)

	res := mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(1 << 21)}})
	require.NoError(t, res[0].Err)
	got, err := s.Get(context.Background(), "t", diskMsg(1<<21).ID)
	require.NoError(t, err)
	require.Len(t, got.Body, 4<<10)
}

// TestStoreRocksDBDiskFullHard takes the reserve away with a file of its
// own, as another program would, so that the journal's writes run out of
// space: the batches fail with ErrNoSpace, nothing of them applied and the
// store not failed, and once the file is gone they are written again;
// every message saved before is still there, and still after a reopen.
func TestStoreRocksDBDiskFullHard(t *testing.T) {
	mnt := mountTmpfs(t, 32<<20)
	cfg := Config{Dir: filepath.Join(mnt, "data"), JournalSegmentSize: 1 << 20, MinFreeSpace: 1 << 20}
	s := openTestConfig(t, cfg)
	defer func() { require.NoError(t, s.Close()) }()
	require.FileExists(t, s.ballastName())

	var saved []string
	for i := range 200 {
		res := mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(i)}})
		require.NoError(t, res[0].Err)
		saved = append(saved, diskMsg(i).ID)
	}
	// Take every byte but a few: a ballast file written until ENOSPC.
	ballast := filepath.Join(mnt, "ballast")
	f, err := os.Create(ballast)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())

	// Saves are refused (at the reserve, or by the write itself), and an
	// ack batch that runs out too fails whole.
	refused := 0
	for i := 200; i < 260; i++ {
		res, err := s.Write(context.Background(), &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(i)}})
		switch {
		case err != nil:
			require.ErrorIs(t, err, store.ErrNoSpace)
			refused++
		case res[0].Err != nil:
			require.ErrorIs(t, res[0].Err, store.ErrNoSpace)
			refused++
		default:
			saved = append(saved, diskMsg(i).ID)
		}
	}
	require.Equal(t, 60, refused)
	require.ErrorIs(t, s.NoSpace(), store.ErrNoSpace)
	require.NoError(t, s.Failed())
	require.NoFileExists(t, s.ballastName(), "a write that ran out released the space reserve file")

	require.NoError(t, os.Remove(ballast))
	took := waitRoom(t, s, 30*time.Second)
	t.Logf("room again %v after the ballast went", took)
	require.Eventually(t, func() bool { _, err := os.Stat(s.ballastName()); return err == nil }, 10*time.Second, 20*time.Millisecond,
		"the space reserve file is made again once there is room")
	for i := 300; i < 310; i++ {
		res := mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(i)}})
		require.NoError(t, res[0].Err)
		saved = append(saved, diskMsg(i).ID)
	}
	ackAll(t, s, saved[:100])

	check := func(s *Store) {
		for i, id := range saved {
			_, err := s.Get(context.Background(), "t", id)
			if i < 100 {
				require.ErrorIs(t, err, store.ErrNotFound, id)
			} else {
				require.NoError(t, err, id)
			}
		}
	}
	check(s)
	require.NoError(t, s.Close())
	s = openTestConfig(t, cfg)
	check(s)
}

// TestIsNoSpace checks the errors taken for a full disk.
func TestIsNoSpace(t *testing.T) {
	require.True(t, isNoSpace(&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}))
	require.True(t, isNoSpace(errors.New("IO error: No space left on device: While appending to file: /d/000012.sst")))
	require.False(t, isNoSpace(&os.PathError{Op: "write", Path: "x", Err: syscall.EIO}))
	require.False(t, isNoSpace(nil))
}

// TestStoreRocksDBDiskFullFlush has RocksDB's flush run out of space, so
// that RocksDB refuses writes until it recovers: a Write whose journal
// record was appended is cut off again and fails whole with ErrNoSpace;
// once there is room RocksDB recovers by itself and writes go on, nothing
// lost, no reopen.
func TestStoreRocksDBDiskFullFlush(t *testing.T) {
	mnt := mountTmpfs(t, 32<<20)
	cfg := Config{Dir: filepath.Join(mnt, "data"), JournalSegmentSize: 8 << 20, MinFreeSpace: 1 << 10}
	s := openTestConfig(t, cfg)
	defer func() { require.NoError(t, s.Close()) }()

	var saved []string
	for i := range 400 {
		res := mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(i)}})
		require.NoError(t, res[0].Err)
		saved = append(saved, diskMsg(i).ID)
	}
	ballast := filepath.Join(mnt, "ballast")
	f, err := os.Create(ballast)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	s.writeMu.Lock()
	require.NoError(t, s.moveHot())
	s.writeMu.Unlock()
	ferr := s.flush()
	t.Logf("flush on a full disk: %v", ferr)
	// Room for the journal, not for RocksDB's table.
	fi, err := f.Stat()
	require.NoError(t, err)
	require.NoError(t, f.Truncate(fi.Size()-256<<10))
	_, err = s.Write(context.Background(), &store.Batch{Now: t0, Updates: []store.Update{{Op: store.OpAck, Topic: "t", ID: saved[0], Group: "g"}}})
	t.Logf("ack while RocksDB refuses: %v", err)
	require.NoError(t, s.Failed())
	require.NoError(t, f.Close())
	require.NoError(t, os.Remove(ballast))
	start := time.Now()
	for {
		_, err := s.Write(context.Background(), &store.Batch{Now: t0, Updates: []store.Update{{Op: store.OpAck, Topic: "t", ID: saved[0], Group: "g"}}})
		if err == nil {
			break
		}
		require.ErrorIs(t, err, store.ErrNoSpace)
		require.Less(t, time.Since(start), 30*time.Second, "RocksDB did not recover: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("writes go on %v after the ballast went", time.Since(start))
	waitRoom(t, s, 30*time.Second)
	require.NoError(t, s.flush())
	for i, id := range saved {
		_, err := s.Get(context.Background(), "t", id)
		if i == 0 {
			require.ErrorIs(t, err, store.ErrNotFound)
		} else {
			require.NoError(t, err, id)
		}
	}
}

// TestStoreRocksDBOpenOnFullDisk: a store reopened on a disk another file
// filled opens (the space reserve file it left makes room), refuses new
// messages, and takes them again once the file is gone.
func TestStoreRocksDBOpenOnFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, 32<<20)
	cfg := Config{Dir: filepath.Join(mnt, "data"), JournalSegmentSize: 1 << 20, MinFreeSpace: 4 << 20, noFlushOnClose: true}
	s := openTestConfig(t, cfg)
	for i := range 100 {
		res := mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(i)}})
		require.NoError(t, res[0].Err)
	}
	require.FileExists(t, s.ballastName())
	require.NoError(t, s.Close()) // the journal stays: the next Open replays it
	ballast := filepath.Join(mnt, "ballast")
	f, err := os.Create(ballast)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())

	s = openTestConfig(t, cfg)
	defer func() { require.NoError(t, s.Close()) }()
	require.ErrorIs(t, s.NoSpace(), store.ErrNoSpace)
	res, err := s.Write(context.Background(), &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(500)}})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, store.ErrNoSpace)
	for i := range 100 {
		_, err := s.Get(context.Background(), "t", diskMsg(i).ID)
		require.NoError(t, err, "replayed")
	}
	require.NoError(t, os.Remove(ballast))
	waitRoom(t, s, 30*time.Second)
	res = mustWrite(t, s, &store.Batch{Now: t0, Saves: []*store.Message{diskMsg(501)}})
	require.NoError(t, res[0].Err)
}
