// Package faultfs is an in-memory vfs.FS for tests that injects faults:
// short writes, fsync errors, ENOSPC, and crashes that drop every byte and
// directory change not yet made durable. It emulates syncfs
// (vfs.FilesystemSyncer) and fallocate (vfs.Preallocator: zeros past the
// end, durable with the next sync).
//
// LOCKING: FS.mu guards the whole filesystem (directory maps, file
// contents, the fault rule and the space budget). Files lock it too.
package faultfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/sluicehq/sluice/storage/vfs"
)

// Op is a filesystem operation a Rule can fail.
type Op int

// Operations.
const (
	OpOpen Op = iota
	OpWrite
	OpSync
	OpSyncDir
	OpTruncate
	OpRename
	OpRemove
	OpRead
	OpSyncfs // Filesystem.Sync (syncfs); path is the handle's directory
	OpPreallocate
)

// Rule decides whether an operation fails. It runs without the FS lock
// held and may call Crash. For OpWrite, a non-nil
// error with n >= 0 writes the first n bytes (a short write) and returns
// the error. n < 0 writes nothing.
type Rule func(op Op, path string, size int) (n int, err error)

// ErrInjected is the default injected I/O error.
var ErrInjected = errors.New("faultfs: injected I/O error")

type inode struct {
	data   []byte // what reads see
	synced []byte // what survives a crash
	// clean: data[:clean] equals synced[:clean] (nothing below it was
	// changed since the last sync), so a sync copies only data[clean:].
	clean int
}

// dirty records a change of data at or after off.
func (in *inode) dirty(off int64) { in.clean = int(min(int64(in.clean), off)) }

// sync makes the contents durable.
func (in *inode) sync() {
	c := min(in.clean, len(in.synced), len(in.data))
	in.synced = append(in.synced[:c], in.data[c:]...)
	in.clean = len(in.data)
}

// FS is an in-memory filesystem with crash semantics.
type FS struct {
	mu        sync.Mutex
	files     map[string]*inode // current namespace
	durable   map[string]*inode // namespace as of the last SyncDir of each dir
	dirs      map[string]bool
	rule      Rule
	space     int64 // bytes left (<0 = unlimited)
	syncCount int
	syncfs    int  // successful Filesystem.Sync calls
	noSyncfs  bool // OpenFilesystem returns vfs.ErrNoSyncfs
	device    uint64
}

var (
	_ vfs.FS               = (*FS)(nil)
	_ vfs.FilesystemSyncer = (*FS)(nil)
	_ vfs.Preallocator     = (*file)(nil)
)

// New returns an empty filesystem with unlimited space.
func New() *FS {
	return &FS{files: map[string]*inode{}, durable: map[string]*inode{}, dirs: map[string]bool{}, space: -1}
}

// SetDevice sets the device number the filesystem's handles report
// (default 0); tests give two FS different devices.
func (f *FS) SetDevice(dev uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.device = dev
}

// DisableSyncfs makes OpenFilesystem fail with vfs.ErrNoSyncfs, like a
// kernel without a safe syncfs.
func (f *FS) DisableSyncfs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noSyncfs = true
}

// Syncfs returns how many Filesystem.Sync calls succeeded.
func (f *FS) Syncfs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncfs
}

// OpenFilesystem implements vfs.FilesystemSyncer. The handle's Sync makes
// the contents of every file durable (syncfs). It leaves the namespace as
// it is: directory entries still need SyncDir, the stricter model (ext4's
// syncfs commits them too, the log does not rely on it).
func (f *FS) OpenFilesystem(dir string) (vfs.Filesystem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if f.noSyncfs {
		return nil, vfs.ErrNoSyncfs
	}
	if !f.dirs[dir] {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: fs.ErrNotExist}
	}
	return &filesystem{fs: f, dir: dir, dev: f.device}, nil
}

type filesystem struct {
	fs     *FS
	dir    string
	dev    uint64
	closed bool
}

func (h *filesystem) Device() uint64 { return h.dev }

func (h *filesystem) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	if _, err := h.fs.check(OpSyncfs, h.dir, 0); err != nil {
		return &fs.PathError{Op: "syncfs", Path: h.dir, Err: err}
	}
	for _, in := range h.fs.files {
		in.sync()
	}
	h.fs.syncfs++
	return nil
}

func (h *filesystem) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	h.closed = true
	return nil
}

// SetRule installs the fault rule (nil = no faults).
func (f *FS) SetRule(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rule = r
}

// SetSpace leaves n more bytes of space for file growth (ENOSPC beyond);
// n < 0 = unlimited.
func (f *FS) SetSpace(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.space = n
}

// Syncs returns how many file fsyncs succeeded.
func (f *FS) Syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncCount
}

func (f *FS) check(op Op, path string, size int) (int, error) {
	if f.rule == nil {
		return size, nil
	}
	// The rule runs unlocked so that it may call Crash or SetSpace.
	rule := f.rule
	f.mu.Unlock()
	n, err := rule(op, path, size)
	f.mu.Lock()
	if err == nil {
		return size, nil
	}
	return n, err
}

// Crash returns the filesystem as a machine restart would find it: only
// synced directory entries and synced file contents survive. The receiver
// is left as it was (open files keep working on it).
func (f *FS) Crash() *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := New()
	for d := range f.dirs {
		c.dirs[d] = true
	}
	for name, in := range f.durable {
		n := &inode{data: append([]byte(nil), in.synced...)}
		n.synced = append([]byte(nil), n.data...)
		n.clean = len(n.data)
		c.files[name] = n
		c.durable[name] = n
	}
	return c
}

// ReadFile returns a file's current contents (a copy).
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.files[filepath.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return append([]byte(nil), in.data...), nil
}

// WriteFile replaces a file's contents, durably (for test setup and
// damage).
func (f *FS) WriteFile(name string, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	in := f.files[name]
	if in == nil {
		in = &inode{}
		f.files[name] = in
		f.durable[name] = in
	}
	in.data = append([]byte(nil), b...)
	in.synced = append([]byte(nil), b...)
	in.clean = len(b)
}

// OpenFile implements vfs.FS. Supported flags: O_RDONLY, O_RDWR, O_WRONLY,
// O_CREATE, O_TRUNC, O_EXCL.
func (f *FS) OpenFile(name string, flag int, _ os.FileMode) (vfs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if _, err := f.check(OpOpen, name, 0); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if !f.dirs[filepath.Dir(name)] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	in, ok := f.files[name]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		in = &inode{}
		f.files[name] = in
	}
	if flag&os.O_TRUNC != 0 {
		if f.space >= 0 {
			f.space += int64(len(in.data))
		}
		in.data = in.data[:0:0]
		in.dirty(0)
	}
	return &file{fs: f, in: in, name: name, write: flag&(os.O_RDWR|os.O_WRONLY) != 0}, nil
}

// Remove implements vfs.FS.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = filepath.Clean(name)
	if _, err := f.check(OpRemove, name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	in, ok := f.files[name]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if f.space >= 0 {
		f.space += int64(len(in.data))
	}
	delete(f.files, name)
	return nil
}

// Rename implements vfs.FS.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	if _, err := f.check(OpRename, newname, 0); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	in, ok := f.files[oldname]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if old, ok := f.files[newname]; ok && f.space >= 0 {
		f.space += int64(len(old.data))
	}
	delete(f.files, oldname)
	f.files[newname] = in
	return nil
}

// MkdirAll implements vfs.FS. Directories are durable at once.
func (f *FS) MkdirAll(dir string, _ os.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		f.dirs[d] = true
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// ReadDir implements vfs.FS.
func (f *FS) ReadDir(dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if !f.dirs[dir] {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for name := range f.files {
		if filepath.Dir(name) == dir {
			names = append(names, filepath.Base(name))
		}
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements vfs.FS: the directory's entries become durable.
func (f *FS) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir = filepath.Clean(dir)
	if _, err := f.check(OpSyncDir, dir, 0); err != nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: err}
	}
	for name := range f.durable {
		if filepath.Dir(name) == dir {
			delete(f.durable, name)
		}
	}
	for name, in := range f.files {
		if filepath.Dir(name) == dir {
			f.durable[name] = in
		}
	}
	return nil
}

type file struct {
	fs     *FS
	in     *inode
	name   string
	write  bool
	closed bool
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0, os.ErrClosed
	}
	if _, err := h.fs.check(OpRead, h.name, len(p)); err != nil {
		return 0, &fs.PathError{Op: "read", Path: h.name, Err: err}
	}
	if off >= int64(len(h.in.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.in.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0, os.ErrClosed
	}
	if !h.write {
		return 0, &fs.PathError{Op: "write", Path: h.name, Err: syscall.EBADF}
	}
	n, err := h.fs.check(OpWrite, h.name, len(p))
	if n < 0 {
		n = 0
	}
	n = min(n, len(p))
	if end := off + int64(n); h.fs.space >= 0 && end > int64(len(h.in.data)) {
		grow := end - max(off, int64(len(h.in.data)))
		if grow > h.fs.space {
			n -= int(grow - h.fs.space)
			n = max(n, 0)
			err = syscall.ENOSPC
		}
	}
	h.in.dirty(min(off, int64(len(h.in.data)))) // a gap past the end changes too
	if end := off + int64(n); end > int64(len(h.in.data)) {
		if h.fs.space >= 0 {
			h.fs.space -= end - int64(len(h.in.data))
		}
		h.in.data = append(h.in.data, make([]byte, end-int64(len(h.in.data)))...)
	}
	copy(h.in.data[off:], p[:n])
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return n, &fs.PathError{Op: "write", Path: h.name, Err: err}
	}
	return n, nil
}

func (h *file) Truncate(size int64) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	if _, err := h.fs.check(OpTruncate, h.name, int(size)); err != nil {
		return &fs.PathError{Op: "truncate", Path: h.name, Err: err}
	}
	cur := int64(len(h.in.data))
	if h.fs.space >= 0 {
		h.fs.space += cur - size
	}
	h.in.dirty(min(cur, size))
	if size <= cur {
		h.in.data = h.in.data[:size:size]
	} else {
		h.in.data = append(h.in.data, make([]byte, size-cur)...)
	}
	return nil
}

func (h *file) Sync() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	if _, err := h.fs.check(OpSync, h.name, 0); err != nil {
		return &fs.PathError{Op: "fsync", Path: h.name, Err: err}
	}
	h.in.sync()
	h.fs.syncCount++
	return nil
}

func (h *file) Size() (int64, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0, os.ErrClosed
	}
	return int64(len(h.in.data)), nil
}

func (h *file) Close() error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	h.closed = true
	return nil
}

// Preallocate implements vfs.Preallocator like fallocate(2): without
// keepSize the file grows to off+n with zeros (durable after the next
// Sync, as the size change of a real fallocate); with keepSize it changes
// nothing (blocks are not modelled). A Rule can fail it (vfs.ErrNoPreallocate
// for a filesystem without fallocate); ENOSPC beyond the space budget.
func (h *file) Preallocate(off, n int64, keepSize bool) error {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return os.ErrClosed
	}
	if !h.write {
		return &fs.PathError{Op: "fallocate", Path: h.name, Err: syscall.EBADF}
	}
	if _, err := h.fs.check(OpPreallocate, h.name, int(n)); err != nil {
		return &fs.PathError{Op: "fallocate", Path: h.name, Err: err}
	}
	end, cur := off+n, int64(len(h.in.data))
	if keepSize || end <= cur {
		return nil
	}
	if h.fs.space >= 0 {
		if end-cur > h.fs.space {
			return &fs.PathError{Op: "fallocate", Path: h.name, Err: syscall.ENOSPC}
		}
		h.fs.space -= end - cur
	}
	h.in.dirty(cur)
	h.in.data = append(h.in.data, make([]byte, end-cur)...)
	return nil
}
