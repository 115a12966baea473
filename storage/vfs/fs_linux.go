//go:build linux

package vfs

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// fdatasync flushes file data and the metadata needed to read it back
// (size), skipping timestamps.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// Preallocate implements Preallocator with fallocate(2).
func (f osFile) Preallocate(off, n int64, keepSize bool) error {
	mode := uint32(0)
	if keepSize {
		mode = unix.FALLOC_FL_KEEP_SIZE
	}
	for {
		err := unix.Fallocate(int(f.Fd()), mode, off, n)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EOPNOTSUPP, unix.ENOSYS:
			return &os.PathError{Op: "fallocate", Path: f.Name(), Err: fmt.Errorf("%w: %w", ErrNoPreallocate, err)}
		}
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
}
