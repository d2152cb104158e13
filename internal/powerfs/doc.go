// Package powerfs is test infrastructure: a FUSE filesystem that loses, at
// a simulated power cut, every write that was not yet made durable, so that
// tests can check what a program really syncs. A killed process keeps the
// page cache; a power cut does not, and only powerfs tells the two apart.
// It owns one FUSE mount at a time over a backing directory, and nothing
// of the broker: it imports nothing of ours.
//
// # The model
//
// An FS is the disk. It outlives its mounts, as a disk outlives the power:
// Mount powers it on at a mount point, Cut cuts the power, and the next
// Mount serves what survived. Every file has two states, the current one
// (what reads see) and the durable one (what survives a cut):
//
//   - File data and size. A write, a truncate or a fallocate changes the
//     current state only, held in memory. fsync(2) or fdatasync(2) of the
//     file (any descriptor of it) makes its whole current content and size
//     durable: the durable content lives in the backing directory, one file
//     per inode, and is all that a cut leaves.
//   - Names. Creating a file or a directory, rename(2), unlink(2) and
//     rmdir(2) change the current namespace only. fsync of a directory
//     makes that directory's current entries durable, all of them (as ext4
//     and XFS do): which names it holds and which inode each names. Nothing
//     else makes a name durable: a file created, written and fsynced whose
//     directory was never fsynced is gone after a cut, and so is a
//     directory whose parent was never fsynced after its mkdir (with
//     everything under it). The durable tree is what the root's durable
//     entries reach, recursively; an inode it does not reach is freed at
//     the cut.
//   - A rename between two directories is durable in each directory when
//     that directory is fsynced, independently: fsync only the target and
//     a cut leaves both names (POSIX allows no atomicity here either).
//
// This is what POSIX promises and what careful programs (RocksDB, SQLite,
// PostgreSQL) rely on; it is stricter than ext4 in practice (whose fsync of
// a file commits every pending metadata change with it), never stricter
// than POSIX: what an fsync made durable always survives. What a cut keeps
// is the last durable state whole; it does not model torn writes, lost
// fsyncs or reordering within what was synced (a real disk with a lying
// write cache), and it keeps no partially written unsynced data (a real
// cut may keep some of it: that can only hide a bug, never fail a correct
// program, except a program that must survive torn unsynced pages, which
// is a stricter test powerfs does not make).
//
// Not supported (ENOTSUP): hard links, symbolic links, device nodes;
// extended attributes are never found. Permissions are not checked, and
// fallocate(2) only extends the size or does nothing (FALLOC_FL_KEEP_SIZE):
// space is not modelled. POSIX record locks are the kernel's (local to the
// mount, released when a process dies). A mount point left busy by a
// process that holds files open is detached lazily at the next Mount.
//
// # Use
//
//	disk, err := powerfs.New(backing)  // an empty directory of its own
//	err = disk.Mount(mnt)              // power on
//	… run a program on mnt …
//	disk.Cut()                         // power cut: every operation now fails with EIO
//	… kill the program …
//	err = disk.Mount(mnt)              // power on again: the durable state
//	disk.Close()                       // unmount, free the backing files
//
// Available reports whether this machine can mount FUSE filesystems
// (/dev/fuse, and root or fusermount3).
//
// # Concurrency
//
// One mutex guards the whole FS; every FUSE operation holds it. Cut and
// Mount may be called from any goroutine.
package powerfs
