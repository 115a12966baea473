// Package vfs is the small filesystem surface the storage log uses, so
// tests can inject faults (see storage/faultfs).
package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// FS is the filesystem surface the log uses. OSFS is the real one.
type FS interface {
	// OpenFile opens a file like os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file.
	Remove(name string) error
	// Rename atomically replaces newname with oldname.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir lists the names of the entries in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
}

// File is an open file of an FS.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Sync makes the file's contents durable (fdatasync where available).
	Sync() error
	// Size returns the current size of the file.
	Size() (int64, error)
}

// OSFS is the operating system's filesystem.
type OSFS struct{}

var _ FS = OSFS{}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f osFile) Sync() error { return fdatasync(f.File) }

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(des))
	for _, d := range des {
		names = append(names, d.Name())
	}
	sort.Strings(names)
	return names, nil
}

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrNoPreallocate reports that a file's filesystem cannot preallocate
// (EOPNOTSUPP), or that the FS has no preallocation at all.
var ErrNoPreallocate = errors.New("vfs: preallocation unsupported")

// Preallocator is implemented by a File that can reserve disk blocks for
// later writes (fallocate(2) on Linux). Writes into reserved blocks need
// no block allocation at writeback, which makes their fsync cheaper.
type Preallocator interface {
	// Preallocate reserves the blocks of [off, off+n). With keepSize the
	// file's size does not change (FALLOC_FL_KEEP_SIZE; a later Truncate
	// releases blocks past the size); otherwise the size grows to off+n
	// if smaller and the new bytes read as zeros. It returns an error
	// wrapping ErrNoPreallocate when the filesystem cannot preallocate.
	Preallocate(off, n int64, keepSize bool) error
}

var _ Preallocator = osFile{}

// ZeroWriter is implemented by a File that writes zeros without a buffer
// from its caller. On filesystems like ext4 and XFS, blocks reserved with
// Preallocate are "unwritten": the fdatasync after the first write into
// one must also commit their conversion through the journal. Blocks that
// already hold written zeros need no such commit once allocated, so the
// fdatasync of a small append into them is a data write and a cache flush.
type ZeroWriter interface {
	// WriteZeros writes n zero bytes at off (the file grows if needed).
	WriteZeros(off, n int64) error
}

var _ ZeroWriter = osFile{}

// zeros is the source of WriteZeros; never written to.
var zeros [256 << 10]byte

// WriteZeros implements ZeroWriter.
func (f osFile) WriteZeros(off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}
