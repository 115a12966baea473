package vfs

import "errors"

// ErrNoSyncfs reports that an FS cannot flush a whole filesystem in one
// call safely (no syncfs(2), or a kernel that does not report writeback
// errors through it).
var ErrNoSyncfs = errors.New("vfs: syncfs unavailable")

// FilesystemSyncer is implemented by an FS that can make a whole
// filesystem durable in one call (syncfs(2) on Linux). A SyncGroup uses it
// to flush many dirty logs at once.
type FilesystemSyncer interface {
	// OpenFilesystem opens a handle on the filesystem holding dir, or
	// returns ErrNoSyncfs.
	OpenFilesystem(dir string) (Filesystem, error)
}

// Filesystem is a handle on one filesystem.
type Filesystem interface {
	// Device identifies the filesystem (st_dev): handles on the same
	// filesystem have the same device.
	Device() uint64
	// Sync makes the contents of every file of the filesystem durable.
	// It reports a writeback error of any file of the filesystem that
	// happened since the handle was opened (on Linux ≥ 5.8), each error
	// once per handle: after an error the caller must assume that any
	// dirty data of the filesystem may be lost.
	Sync() error
	// Close releases the handle.
	Close() error
}
