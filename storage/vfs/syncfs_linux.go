//go:build linux

package vfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var _ FilesystemSyncer = OSFS{}

// syncfsReportsErrors reports whether the running kernel returns writeback
// errors from syncfs(2): Linux 5.8 and later (the superblock errseq,
// commit 735e4ae5ba28). Older kernels return 0 even when writeback failed,
// which would lose an fsync error.
var syncfsReportsErrors = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
})

// kernelAtLeast parses a release such as "6.18.44-fc-v769".
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	minStr := parts[1]
	if i := strings.IndexFunc(minStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minStr = minStr[:i]
	}
	mnr, err2 := strconv.Atoi(minStr)
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || (maj == major && mnr >= minor)
}

// OpenFilesystem implements FilesystemSyncer: it opens dir and calls
// syncfs(2) on that descriptor.
func (OSFS) OpenFilesystem(dir string) (Filesystem, error) {
	if !syncfsReportsErrors() {
		return nil, ErrNoSyncfs
	}
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		d.Close()
		return nil, &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	return &osFilesystem{d: d, dev: uint64(st.Dev)}, nil
}

type osFilesystem struct {
	d   *os.File
	dev uint64
}

func (h *osFilesystem) Device() uint64 { return h.dev }

func (h *osFilesystem) Sync() error {
	for {
		err := unix.Syncfs(int(h.d.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "syncfs", Path: h.d.Name(), Err: err}
			}
			return nil
		}
	}
}

func (h *osFilesystem) Close() error { return h.d.Close() }

func (h *osFilesystem) String() string { return fmt.Sprintf("filesystem %#x at %s", h.dev, h.d.Name()) }
