package powerfs_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/internal/powerfs"
)

// mount returns a powered-on disk at a fresh mount point. Where FUSE is
// missing the test skips, or fails when CI is set.
func mount(t *testing.T) (*powerfs.FS, string) {
	t.Helper()
	if err := powerfs.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the power-cut tests: %v", err)
		}
		t.Skipf("skipping the power-cut tests: %v", err)
	}
	disk, err := powerfs.New(filepath.Join(t.TempDir(), "backing"))
	require.NoError(t, err)
	mnt := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mnt, 0o750))
	require.NoError(t, disk.Mount(mnt))
	t.Cleanup(func() { require.NoError(t, disk.Close()) })
	return disk, mnt
}

// powerCycle cuts the power and powers the disk on again.
func powerCycle(t *testing.T, disk *powerfs.FS, mnt string) {
	t.Helper()
	disk.Cut()
	require.NoError(t, disk.Mount(mnt))
}

func writeFile(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	require.NoError(t, f.Close())
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	require.NoError(t, err)
	require.NoError(t, d.Sync())
	require.NoError(t, d.Close())
}

func requireContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "%s: got %d bytes %q…, want %d bytes %q…", path, len(got), head(got), len(want), head(want))
}

func requireGone(t *testing.T, path string) {
	t.Helper()
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, path)
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

func TestUnsyncedFileIsLost(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "a")
	writeFile(t, p, []byte("hello"), false)
	requireContent(t, p, []byte("hello"))
	powerCycle(t, disk, mnt)
	requireGone(t, p)
}

func TestSyncedFileWithoutDirSyncIsLost(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "a")
	writeFile(t, p, []byte("hello"), true)
	powerCycle(t, disk, mnt)
	requireGone(t, p)
}

func TestDirSyncWithoutFileSyncKeepsAnEmptyFile(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "a")
	writeFile(t, p, []byte("hello"), false)
	syncDir(t, mnt)
	powerCycle(t, disk, mnt)
	requireContent(t, p, nil)
}

func TestSyncedFileAndDirSurvive(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "a")
	big := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB, many pages
	writeFile(t, p, big, true)
	syncDir(t, mnt)
	powerCycle(t, disk, mnt)
	requireContent(t, p, big)
	powerCycle(t, disk, mnt) // and again: nothing more to lose
	requireContent(t, p, big)
}

func TestAppendsAfterTheSyncAreLost(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "log")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	require.NoError(t, err)
	syncDir(t, mnt)
	_, err = f.WriteString("first ")
	require.NoError(t, err)
	require.NoError(t, syscall.Fdatasync(int(f.Fd())))
	_, err = f.WriteString("second")
	require.NoError(t, err)
	requireContent(t, p, []byte("first second"))
	powerCycle(t, disk, mnt)
	_, err = f.WriteString("more")
	require.ErrorIs(t, err, syscall.EIO, "the old descriptor fails after the cut")
	_ = f.Close()
	requireContent(t, p, []byte("first "))
}

func TestOverwriteAndTruncateUnsyncedAreLost(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "f")
	orig := bytes.Repeat([]byte("x"), 10_000)
	writeFile(t, p, orig, true)
	syncDir(t, mnt)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("yyy"), 5000)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(100))
	require.NoError(t, f.Truncate(6000)) // extended again: zeros, not the old x
	require.NoError(t, f.Close())
	want := append(bytes.Repeat([]byte("x"), 100), make([]byte, 5900)...)
	requireContent(t, p, want)
	powerCycle(t, disk, mnt)
	requireContent(t, p, orig)
}

func TestTruncateThenExtendSynced(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, bytes.Repeat([]byte("x"), 10_000), true)
	syncDir(t, mnt)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(100))
	_, err = f.WriteAt([]byte("end"), 8000)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	want := append(bytes.Repeat([]byte("x"), 100), make([]byte, 7900)...)
	want = append(want, "end"...)
	powerCycle(t, disk, mnt)
	requireContent(t, p, want)
}

func TestRenameIsDurableOnlyAfterDirSync(t *testing.T) {
	disk, mnt := mount(t)
	tmp, cur := filepath.Join(mnt, "CURRENT.tmp"), filepath.Join(mnt, "CURRENT")
	writeFile(t, cur, []byte("old"), true)
	syncDir(t, mnt)
	writeFile(t, tmp, []byte("new"), true)
	require.NoError(t, os.Rename(tmp, cur))
	requireContent(t, cur, []byte("new"))
	powerCycle(t, disk, mnt)
	requireContent(t, cur, []byte("old"))
	requireGone(t, tmp)

	writeFile(t, tmp, []byte("new"), true)
	require.NoError(t, os.Rename(tmp, cur))
	syncDir(t, mnt)
	powerCycle(t, disk, mnt)
	requireContent(t, cur, []byte("new"))
	requireGone(t, tmp)
}

func TestUnlinkIsDurableOnlyAfterDirSync(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("data"), true)
	syncDir(t, mnt)
	require.NoError(t, os.Remove(p))
	powerCycle(t, disk, mnt)
	requireContent(t, p, []byte("data"))
	require.NoError(t, os.Remove(p))
	syncDir(t, mnt)
	powerCycle(t, disk, mnt)
	requireGone(t, p)
}

func TestNewDirectoryNeedsItsParentSynced(t *testing.T) {
	disk, mnt := mount(t)
	dir := filepath.Join(mnt, "data", "journal")
	require.NoError(t, os.MkdirAll(dir, 0o750))
	p := filepath.Join(dir, "000001.log")
	writeFile(t, p, []byte("rec"), true)
	syncDir(t, dir)
	syncDir(t, filepath.Join(mnt, "data"))
	powerCycle(t, disk, mnt)
	requireGone(t, filepath.Join(mnt, "data")) // the root was never synced

	require.NoError(t, os.MkdirAll(dir, 0o750))
	writeFile(t, p, []byte("rec"), true)
	syncDir(t, dir)
	syncDir(t, filepath.Join(mnt, "data"))
	syncDir(t, mnt)
	powerCycle(t, disk, mnt)
	requireContent(t, p, []byte("rec"))
}

func TestEveryOperationFailsAfterTheCut(t *testing.T) {
	disk, mnt := mount(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("x"), true)
	syncDir(t, mnt)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	disk.Cut()
	_, err = f.Write([]byte("y"))
	require.True(t, errors.Is(err, syscall.EIO), "write after the cut: %v", err)
	require.ErrorIs(t, f.Sync(), syscall.EIO)
	_, err = os.Create(filepath.Join(mnt, "g"))
	require.Error(t, err)
	require.Equal(t, 1, disk.Cuts())
}

func TestReaddirShowsTheCurrentNames(t *testing.T) {
	disk, mnt := mount(t)
	writeFile(t, filepath.Join(mnt, "a"), nil, false)
	syncDir(t, mnt)
	writeFile(t, filepath.Join(mnt, "b"), nil, false)
	names := func() []string {
		ents, err := os.ReadDir(mnt)
		require.NoError(t, err)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	require.Equal(t, []string{"a", "b"}, names())
	powerCycle(t, disk, mnt)
	require.Equal(t, []string{"a"}, names())
}
