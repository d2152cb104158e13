package rocksdb

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/internal/powerfs"
)

// TestStoreRocksDBPowerCut runs the crash child in Sync mode on a
// powerfs disk and cuts the power under it at a random moment, again and
// again on the same directory (the first cut lands on a fresh one): a
// power cut keeps only what was fsynced, and what a directory's fsync
// named, so every batch the child acknowledged must survive each cut.
// Where FUSE is missing it skips, or fails when CI is set.
func TestStoreRocksDBPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes on a FUSE mount")
	}
	if err := powerfs.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the power-cut tests: %v", err)
		}
		t.Skipf("skipping the power-cut tests: %v", err)
	}
	seed := rand.Uint64()
	if v := os.Getenv("KITENATS_POWERCUT_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "KITENATS_POWERCUT_SEED")
	}
	t.Logf("seed %d (KITENATS_POWERCUT_SEED=%d replays the random moments)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	disk, err := powerfs.New(filepath.Join(t.TempDir(), "backing"))
	require.NoError(t, err)
	mnt := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mnt, 0o750))
	require.NoError(t, disk.Mount(mnt))
	defer func() { require.NoError(t, disk.Close()) }()
	// A directory the store creates, under a parent it must sync.
	dir := filepath.Join(mnt, "a", "data")
	n := 0
	for cycle := range 12 {
		// Mostly under load; every third cut 0 to 5 ms after the child
		// begins to open the store (in its replay of what the last cut
		// left, or just after).
		atLeast := n + rng.IntN(60)
		wait := time.Duration(rng.IntN(2000)) * time.Microsecond
		if cycle%3 == 2 {
			atLeast, wait = -1, time.Duration(rng.IntN(5000))*time.Microsecond
		}
		last := cutAfter(t, disk, dir, n, atLeast, wait)
		require.NoError(t, disk.Mount(mnt))
		found := requireSurvived(t, dir, Sync, last)
		t.Logf("cycle %d: batches %d..%d acknowledged before the cut, %d found", cycle, n, last, found)
		n = found
	}
}

// cutAfter runs the crash child on dir from batch start until it
// acknowledged batch atLeast (with atLeast -1: until it says it opens the
// store), waits a little more, cuts the power and kills the child at once,
// and returns the last batch it acknowledged (start-1 if none).
func cutAfter(t *testing.T, disk *powerfs.FS, dir string, start, atLeast int, wait time.Duration) int {
	t.Helper()
	cmd, sc := startChild(t, dir, Sync, start)
	guard := time.AfterFunc(crashChildLimit, func() { _ = cmd.Process.Kill() })
	defer guard.Stop()
	last := make(chan int, 1)
	reached := make(chan struct{})
	go func() {
		l := start - 1
		for sc.Scan() {
			if atLeast < 0 && sc.Text() == "opening" {
				close(reached)
			}
			var k int
			if _, err := fmt.Sscanf(sc.Text(), "acked %d", &k); err == nil {
				l = k
				if k == atLeast {
					close(reached)
				}
			}
		}
		last <- l
	}()
	select {
	case <-reached:
	case <-time.After(crashChildLimit):
		t.Fatal("the child did not acknowledge enough batches")
	}
	time.Sleep(wait)
	disk.Cut()
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	return <-last
}
