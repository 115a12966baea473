package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/storage/faultfs"
	"github.com/sluicehq/sluice/storage/vfs"
)

// zeroFS is a faultfs whose files write zeros (vfs.ZeroWriter) and cannot
// preallocate otherwise, so a log on it preallocates only by zeros ahead.
type zeroFS struct{ *faultfs.FS }

func (z zeroFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := z.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return zeroFile{f}, nil
}

type zeroFile struct{ vfs.File }

func (f zeroFile) WriteZeros(off, n int64) error {
	_, err := f.WriteAt(make([]byte, n), off)
	return err
}

// TestZeroAhead: a log whose fdatasyncs cover little, zeroAheadAfter times
// in a row, writes zeros ahead of its frames, zeroAheadBytes at a time; a crash ends it at the zeros with
// every synced entry; a flush of more than zeroAheadMaxSync bytes turns
// it off, and Close trims the zeros.
func TestZeroAhead(t *testing.T) {
	mem := faultfs.New()
	o := Options{FS: zeroFS{mem}, SegmentBytes: 8 << 20, IndexIntervalBytes: 4 << 10}
	l := mustOpen(t, "/z", o)
	path := filepath.Join("/z", segBaseName(1)+segSuffix)
	size := func(fs *faultfs.FS) int64 { return int64(len(must[[]byte](t)(fs.ReadFile(path)))) }

	i := uint64(1)
	for ; i <= uint64(zeroAheadAfter); i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 1000))
		if got := size(mem); got != l.activeSize() {
			t.Fatalf("after %d small flushes: file %d bytes, frames %d: want no zeros yet", i-1, got, l.activeSize())
		}
		must0(t, l.Sync())
	}
	mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 1000))
	if got, want := size(mem), l.activeSize()+zeroAheadBytes; got != want {
		t.Fatalf("after %d small fdatasyncs: file %d bytes, want %d (zeros ahead)", zeroAheadAfter, got, want)
	}
	must0(t, l.Sync())
	// Appends within the zeros write none until half of them are used.
	i++
	for ; l.activeSize()+1100 < size(mem)-zeroAheadBytes/2; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 1000))
		must0(t, l.Sync())
	}
	before := size(mem)
	mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 1000))
	if got := size(mem); got <= before {
		t.Fatalf("half of the zeros used: file still %d bytes", got)
	}
	must0(t, l.Sync())
	last := i

	// A crash keeps every synced entry; the zeros end the log.
	o.FS = zeroFS{mem.Crash()}
	r := mustOpen(t, "/z", o)
	if got := must[uint64](t)(r.LastIndex()); got != last {
		t.Fatalf("after a crash: last index %d, want %d", got, last)
	}
	checkInvariants(t, r, 0)
	mustAppend(t, r, batchEntry(last+1, 1, 1, 1, 1000))
	must0(t, r.Sync())
	r.Close()

	// A large flush turns zeros ahead off.
	for j := range 80 {
		mustAppend(t, l, batchEntry(last+1+uint64(j), 1, 1, 1, 1000))
	}
	must0(t, l.Sync())
	l.mu.Lock()
	on := l.mu.zeroAhead
	l.mu.Unlock()
	if on {
		t.Fatal("zeros ahead still on after a flush of 80 KB")
	}
	l.Close()
	if got := size(mem); got != l.activeSize() {
		t.Fatalf("after Close: file %d bytes, frames %d", got, l.activeSize())
	}
}

func must0(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
