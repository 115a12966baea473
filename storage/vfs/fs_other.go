//go:build !linux

package vfs

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// Preallocate implements Preallocator: no preallocation outside Linux.
func (f osFile) Preallocate(int64, int64, bool) error { return ErrNoPreallocate }
