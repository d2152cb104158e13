package rocksdb

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	t.Logf("seed %d", seed)
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
		atLeast := n + rng.IntN(60)
		last := cutAfter(t, disk, dir, n, atLeast, time.Duration(rng.IntN(2000))*time.Microsecond)
		require.NoError(t, disk.Mount(mnt))
		found := requireSurvived(t, dir, Sync, last)
		t.Logf("cycle %d: batches %d..%d acknowledged before the cut, %d found", cycle, n, last, found)
		n = found
	}
}

// cutAfter runs the crash child on dir from batch start until it
// acknowledged batch atLeast, waits a little more, cuts the power and
// kills the child at once, and returns the last batch it acknowledged.
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
