//go:build !linux

package vfs

var _ FilesystemSyncer = OSFS{}

// OpenFilesystem implements FilesystemSyncer: no syncfs outside Linux.
func (OSFS) OpenFilesystem(string) (Filesystem, error) { return nil, ErrNoSyncfs }
