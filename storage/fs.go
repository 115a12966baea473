package storage

import "github.com/sluicehq/sluice/storage/vfs"

// FS is the small filesystem surface the log uses; nil in Options means the
// OS filesystem. storage/faultfs injects faults for tests.
type FS = vfs.FS

// File is an open file of an FS.
type File = vfs.File

// OSFS is the operating system's filesystem.
type OSFS = vfs.OSFS
