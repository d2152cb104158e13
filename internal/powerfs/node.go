package powerfs

import (
	"context"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is the FUSE face of an inode during one power-on (gen). Every
// operation takes the FS lock and fails with EIO once the power is cut.
type node struct {
	fs.Inode
	f   *FS
	in  *inode
	gen uint64
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeReader     = (*node)(nil)
	_ fs.NodeWriter     = (*node)(nil)
	_ fs.NodeFsyncer    = (*node)(nil)
	_ fs.NodeFlusher    = (*node)(nil)
	_ fs.NodeAllocater  = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
	_ fs.NodeOpendirer  = (*node)(nil)
	_ fs.NodeReleaser   = (*node)(nil)
	_ fs.NodeAccesser   = (*node)(nil)
	_ fs.NodeGetxattrer = (*node)(nil)
)

// lock takes the FS lock and reports whether n may serve (the power is on
// and n belongs to this power-on). The caller unlocks f.mu either way.
func (n *node) lock() bool {
	n.f.mu.Lock()
	return n.f.powered && n.f.gen == n.gen
}

// errno maps a backing-file error to an errno.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return fs.ToErrno(err)
}

func (n *node) fill(in *inode, out *fuse.Attr) {
	out.Ino = in.id
	if in.dir {
		out.Mode = syscall.S_IFDIR | in.mode
		out.Nlink = 2
		out.Size = 4096
	} else {
		out.Mode = syscall.S_IFREG | in.mode
		out.Nlink = 1
		out.Size = uint64(in.size)
		out.Blocks = (uint64(in.size) + 511) / 512
	}
	out.Blksize = pageSize
	out.Uid, out.Gid = uint32(os.Geteuid()), uint32(os.Getegid())
	out.SetTimes(&in.mtime, &in.mtime, &in.mtime)
}

// child returns the Inode of in under n, for the kernel.
func (n *node) child(ctx context.Context, in *inode, out *fuse.EntryOut) *fs.Inode {
	n.fill(in, &out.Attr)
	mode := uint32(syscall.S_IFREG)
	if in.dir {
		mode = syscall.S_IFDIR
	}
	return n.NewInode(ctx, &node{f: n.f, in: in, gen: n.gen}, fs.StableAttr{Mode: mode, Ino: in.id})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return nil, syscall.EIO
	}
	c, ok := n.in.entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return n.child(ctx, c, out), 0
}

func (n *node) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	n.fill(n.in, &out.Attr)
	return 0
}

func (n *node) Setattr(_ context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	if sz, ok := in.GetSize(); ok {
		if n.in.dir {
			return syscall.EISDIR
		}
		n.f.truncate(n.in, int64(sz))
	}
	if m, ok := in.GetMode(); ok {
		n.in.mode = m & 0o7777
	}
	if t, ok := in.GetMTime(); ok {
		n.in.mtime = t
	}
	n.fill(n.in, &out.Attr)
	return 0
}

func (n *node) Access(context.Context, uint32) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	return 0
}

func (n *node) Getxattr(context.Context, string, []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}

func (n *node) Opendir(context.Context) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	return 0
}

func (n *node) Readdir(context.Context) (fs.DirStream, syscall.Errno) {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return nil, syscall.EIO
	}
	list := make([]fuse.DirEntry, 0, len(n.in.entries))
	for name, c := range n.in.entries {
		mode := uint32(syscall.S_IFREG)
		if c.dir {
			mode = syscall.S_IFDIR
		}
		list = append(list, fuse.DirEntry{Name: name, Mode: mode, Ino: c.id})
	}
	return fs.NewListDirStream(list), 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return nil, syscall.EIO
	}
	if _, ok := n.in.entries[name]; ok {
		return nil, syscall.EEXIST
	}
	c := n.f.newInode(true, mode)
	n.in.entries[name] = c
	n.in.mtime = c.mtime
	return n.child(ctx, c, out), 0
}

func (n *node) Create(ctx context.Context, name string, _ uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return nil, nil, 0, syscall.EIO
	}
	if _, ok := n.in.entries[name]; ok {
		return nil, nil, 0, syscall.EEXIST
	}
	c := n.f.newInode(false, mode)
	n.in.entries[name] = c
	n.in.mtime = c.mtime
	return n.child(ctx, c, out), nil, 0, 0
}

func (n *node) Unlink(_ context.Context, name string) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	c, ok := n.in.entries[name]
	switch {
	case !ok:
		return syscall.ENOENT
	case c.dir:
		return syscall.EISDIR
	}
	delete(n.in.entries, name)
	return 0
}

func (n *node) Rmdir(_ context.Context, name string) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	c, ok := n.in.entries[name]
	switch {
	case !ok:
		return syscall.ENOENT
	case !c.dir:
		return syscall.ENOTDIR
	case len(c.entries) > 0:
		return syscall.ENOTEMPTY
	}
	delete(n.in.entries, name)
	return 0
}

// renameExchange and renameNoreplace are rename(2)'s flags.
const (
	renameNoreplace = 1
	renameExchange  = 2
)

func (n *node) Rename(_ context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	src, ok := n.in.entries[name]
	if !ok {
		return syscall.ENOENT
	}
	dst, exists := np.in.entries[newName]
	switch {
	case flags&renameExchange != 0:
		if !exists {
			return syscall.ENOENT
		}
		n.in.entries[name], np.in.entries[newName] = dst, src
		return 0
	case flags&^renameNoreplace != 0:
		return syscall.EINVAL
	case exists && flags&renameNoreplace != 0:
		return syscall.EEXIST
	case exists && dst == src:
		return 0
	case exists && src.dir && !dst.dir:
		return syscall.ENOTDIR
	case exists && !src.dir && dst.dir:
		return syscall.EISDIR
	case exists && dst.dir && len(dst.entries) > 0:
		return syscall.ENOTEMPTY
	}
	delete(n.in.entries, name)
	np.in.entries[newName] = src
	return 0
}

func (n *node) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return nil, 0, syscall.EIO
	}
	if flags&syscall.O_TRUNC != 0 && !n.in.dir {
		n.f.truncate(n.in, 0)
	}
	return nil, 0, 0
}

func (n *node) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return nil, syscall.EIO
	}
	got, err := n.f.read(n.in, dest, off)
	if err != nil {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:got]), 0
}

func (n *node) Write(_ context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return 0, syscall.EIO
	}
	if err := n.f.write(n.in, data, off); err != nil {
		return 0, errno(err)
	}
	return uint32(len(data)), 0
}

// Fsync makes a file's content, or a directory's entries, durable.
func (n *node) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	if n.in.dir {
		n.f.syncDir(n.in)
		return 0
	}
	return errno(n.f.syncFile(n.in))
}

func (n *node) Flush(context.Context, fs.FileHandle) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	return 0
}

func (n *node) Release(context.Context, fs.FileHandle) syscall.Errno { return 0 }

// Allocate supports fallocate(2) modes 0 (extend the size) and
// FALLOC_FL_KEEP_SIZE (nothing to do: space is not modelled).
func (n *node) Allocate(_ context.Context, _ fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	const keepSize = 1
	switch mode {
	case 0:
		if end := int64(off + size); end > n.in.size {
			n.f.truncate(n.in, end)
		}
		return 0
	case keepSize:
		return 0
	default:
		return syscall.EOPNOTSUPP
	}
}

func (n *node) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	defer n.f.mu.Unlock()
	if !n.lock() {
		return syscall.EIO
	}
	const blocks = 1 << 28 // 1 TiB of 4 KiB blocks: space is not modelled
	out.Bsize, out.Frsize = pageSize, pageSize
	out.Blocks, out.Bfree, out.Bavail = blocks, blocks, blocks
	out.Files, out.Ffree = 1<<30, 1<<30
	out.NameLen = 255
	return 0
}
