package powerfs

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageSize is the unit in which unsynced file data is held in memory.
const pageSize = 4096

// FS is a disk that loses its unsynced writes at a power cut; see doc.go.
type FS struct {
	backing string

	mu     sync.Mutex
	root   *inode
	inodes map[uint64]*inode // every inode not freed yet
	nextID uint64
	// gen counts power-ons; a node serves only while its gen is current and
	// the power is on.
	gen     uint64
	powered bool
	server  *fuse.Server
	mnt     string
	cuts    int
}

// inode is one file or directory of the disk, current and durable.
type inode struct {
	id    uint64
	dir   bool
	mode  uint32 // permission bits
	mtime time.Time

	// A directory's entries: current and durable.
	entries map[string]*inode
	synced  map[string]*inode

	// A file's data. The durable content is the backing file obj, syncedSize
	// bytes. The current content is, page by page, the dirty page when there
	// is one, else the durable content below valid, else zeros; size is its
	// length. valid <= size and valid <= syncedSize always hold (a truncate
	// lowers valid), and the bytes of a dirty page past size are zero.
	size       int64
	syncedSize int64
	valid      int64
	dirty      map[int64][]byte
	obj        *os.File
}

// New returns a powered-off disk keeping its durable file contents in
// backing, which must be an empty directory (created if missing) that
// nothing else uses. The disk starts empty.
func New(backing string) (*FS, error) {
	if err := os.MkdirAll(backing, 0o750); err != nil {
		return nil, fmt.Errorf("powerfs: %w", err)
	}
	ents, err := os.ReadDir(backing)
	if err != nil {
		return nil, fmt.Errorf("powerfs: %w", err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("powerfs: backing directory %s is not empty", backing)
	}
	f := &FS{backing: backing, inodes: map[uint64]*inode{}, nextID: 1}
	f.root = f.newInode(true, 0o755)
	return f, nil
}

// Available returns nil when this machine can mount a powerfs: /dev/fuse
// opens, and the process is root or has fusermount3 (or fusermount). The
// error says what is missing.
func Available() error {
	d, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("powerfs: FUSE is not available here: %w (install the fuse3 package; containers need --device /dev/fuse)", err)
	}
	_ = d.Close()
	if os.Geteuid() == 0 {
		return nil
	}
	for _, name := range []string{"fusermount3", "fusermount"} {
		if _, err := exec.LookPath(name); err == nil {
			return nil
		}
	}
	return errors.New("powerfs: not root and no fusermount3 in PATH (install the fuse3 package)")
}

// newInode creates an inode with nothing in it. caller must hold f.mu (or
// own f)
func (f *FS) newInode(dir bool, mode uint32) *inode {
	in := &inode{id: f.nextID, dir: dir, mode: mode & 0o7777, mtime: time.Now()}
	f.nextID++
	if dir {
		in.entries, in.synced = map[string]*inode{}, map[string]*inode{}
	} else {
		in.dirty = map[int64][]byte{}
	}
	f.inodes[in.id] = in
	return in
}

// objPath is the backing file of inode id.
func (f *FS) objPath(id uint64) string { return filepath.Join(f.backing, strconv.FormatUint(id, 10)) }

// Mount powers the disk on at mnt (an existing directory): the program
// there sees the durable state, that is everything synced before the last
// Cut. A mount of a previous power-on is unmounted first. The disk serves
// until Cut or Close.
func (f *FS) Mount(mnt string) error {
	if err := f.unmount(); err != nil {
		return err
	}
	f.mu.Lock()
	f.gen++
	f.powered = true
	root := &node{f: f, in: f.root, gen: f.gen}
	f.mu.Unlock()
	sec := time.Second
	zero := time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:      "powerfs",
			Name:        "powerfs",
			DirectMount: true,
			MaxWrite:    1 << 20,
		},
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NegativeTimeout: &zero,
	}
	srv, err := fs.Mount(mnt, root, opts)
	if err != nil {
		f.mu.Lock()
		f.powered = false
		f.mu.Unlock()
		return fmt.Errorf("powerfs: mount %s: %w", mnt, err)
	}
	f.mu.Lock()
	f.server, f.mnt = srv, mnt
	f.mu.Unlock()
	return nil
}

// Cut cuts the power: every write not made durable is gone, and every
// operation on the mount fails with EIO until the next Mount (a process
// using it should be killed too). It may be called while a program is in
// the middle of a write or an fsync: each operation happens wholly before
// the cut or fails.
func (f *FS) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.powered = false
	f.cuts++
	for _, in := range f.inodes {
		if in.dir {
			in.entries = maps.Clone(in.synced)
			continue
		}
		in.dirty = map[int64][]byte{}
		in.size, in.valid = in.syncedSize, in.syncedSize
	}
	// Free what the durable tree does not reach.
	reached := map[uint64]bool{}
	var walk func(*inode)
	walk = func(in *inode) {
		reached[in.id] = true
		for _, c := range in.synced {
			if !reached[c.id] {
				walk(c)
			}
		}
	}
	walk(f.root)
	for id, in := range f.inodes {
		if reached[id] {
			continue
		}
		if in.obj != nil {
			_ = in.obj.Close()
			in.obj = nil
			_ = os.Remove(f.objPath(id))
		}
		delete(f.inodes, id)
	}
}

// Cuts returns how many times Cut was called.
func (f *FS) Cuts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cuts
}

// Close unmounts the disk (the power stays as it is: nothing is
// discarded) and frees its backing files.
func (f *FS) Close() error {
	err := f.unmount()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.powered = false
	for _, in := range f.inodes {
		if in.obj != nil {
			_ = in.obj.Close()
			in.obj = nil
		}
	}
	if e := os.RemoveAll(f.backing); err == nil && e != nil {
		err = fmt.Errorf("powerfs: %w", e)
	}
	return err
}

// unmount ends the current mount, if any. It retries while the kernel
// still counts open files of a process that just died, then detaches the
// mount lazily.
func (f *FS) unmount() error {
	f.mu.Lock()
	srv, mnt := f.server, f.mnt
	f.server, f.mnt = nil, ""
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Unmount(); err == nil {
		return nil
	}
	// Busy: detach it; the kernel ends it when the last file closes.
	var err error
	if os.Geteuid() == 0 {
		err = syscall.Unmount(mnt, syscall.MNT_DETACH)
	} else {
		err = exec.Command("fusermount3", "-u", "-z", mnt).Run()
	}
	if err != nil {
		return fmt.Errorf("powerfs: unmount %s: %w", mnt, err)
	}
	// The detached server serves the files still open (with EIO: its power
	// is off) and ends by itself when the last one closes.
	return nil
}

// open returns the backing file of a file inode, creating it. caller must
// hold f.mu
func (f *FS) open(in *inode) (*os.File, error) {
	if in.obj != nil {
		return in.obj, nil
	}
	o, err := os.OpenFile(f.objPath(in.id), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	in.obj = o
	return o, nil
}

// readDurable fills p with the durable bytes at off that are still current
// (below valid), zeros elsewhere. caller must hold f.mu
func (f *FS) readDurable(in *inode, p []byte, off int64) error {
	clear(p)
	end := min(off+int64(len(p)), in.valid)
	if end <= off || in.obj == nil {
		return nil
	}
	_, err := in.obj.ReadAt(p[:end-off], off)
	return err
}

// read reads the current content of file in at off into p, returning how
// many bytes it read (short at the end of the file). caller must hold f.mu
func (f *FS) read(in *inode, p []byte, off int64) (int, error) {
	if off >= in.size {
		return 0, nil
	}
	p = p[:min(int64(len(p)), in.size-off)]
	for done := 0; done < len(p); {
		pos := off + int64(done)
		pg, at := pos/pageSize, pos%pageSize
		n := min(int64(len(p)-done), pageSize-at)
		if d, ok := in.dirty[pg]; ok {
			copy(p[done:done+int(n)], d[at:at+n])
		} else if err := f.readDurable(in, p[done:done+int(n)], pos); err != nil {
			return done, err
		}
		done += int(n)
	}
	return len(p), nil
}

// page returns the dirty page pg of in, making it from the current content
// when there is none. caller must hold f.mu
func (f *FS) page(in *inode, pg int64) ([]byte, error) {
	if d, ok := in.dirty[pg]; ok {
		return d, nil
	}
	d := make([]byte, pageSize)
	if err := f.readDurable(in, d, pg*pageSize); err != nil {
		return nil, err
	}
	in.dirty[pg] = d
	return d, nil
}

// write writes p at off to the current content of in. caller must hold f.mu
func (f *FS) write(in *inode, p []byte, off int64) error {
	for done := 0; done < len(p); {
		pos := off + int64(done)
		pg, at := pos/pageSize, pos%pageSize
		n := min(int64(len(p)-done), pageSize-at)
		d, err := f.page(in, pg)
		if err != nil {
			return err
		}
		copy(d[at:at+n], p[done:done+int(n)])
		done += int(n)
	}
	in.size = max(in.size, off+int64(len(p)))
	in.mtime = time.Now()
	return nil
}

// truncate sets the current size of in. caller must hold f.mu
func (f *FS) truncate(in *inode, size int64) {
	if size < in.size {
		last := size / pageSize
		for pg, d := range in.dirty {
			switch {
			case pg > last:
				delete(in.dirty, pg)
			case pg == last:
				clear(d[size%pageSize:])
			}
		}
		in.valid = min(in.valid, size)
	}
	in.size = size
	in.mtime = time.Now()
}

// syncFile makes the current content of file in durable. caller must hold
// f.mu
func (f *FS) syncFile(in *inode) error {
	if len(in.dirty) == 0 && in.valid == in.size && in.syncedSize == in.size {
		return nil
	}
	o, err := f.open(in)
	if err != nil {
		return err
	}
	// The durable bytes from valid on are stale: cut them off, write the
	// dirty pages, and set the size (the gaps read as zeros, as they do now).
	if in.valid < in.syncedSize {
		if err := o.Truncate(in.valid); err != nil {
			return err
		}
	}
	for pg, d := range in.dirty {
		off := pg * pageSize
		if off >= in.size {
			continue
		}
		if _, err := o.WriteAt(d[:min(pageSize, in.size-off)], off); err != nil {
			return err
		}
	}
	if err := o.Truncate(in.size); err != nil {
		return err
	}
	in.dirty = map[int64][]byte{}
	in.syncedSize, in.valid = in.size, in.size
	return nil
}

// syncDir makes the current entries of directory in durable. caller must
// hold f.mu
func (f *FS) syncDir(in *inode) {
	in.synced = maps.Clone(in.entries)
}
