package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/storage/faultfs"
	"github.com/sluicehq/sluice/storage/vfs"
)

// TestPreallocate: the active segment's file extends past its frames with
// zeros; a roll trims the sealed segment to its frames before fsyncing it,
// Close trims the active one, and after a crash Open ends the log at the
// zeros. Preallocated space takes writes when the filesystem is full.
func TestPreallocate(t *testing.T) {
	fs := faultfs.New()
	o := memOpts(fs)
	o.SegmentBytes = 8 << 10
	o.PreallocateBytes = 3 << 10
	l := mustOpen(t, "/p", o)
	size := func(base uint64) int64 {
		b := must[[]byte](t)(fs.ReadFile(filepath.Join("/p", segBaseName(base)+segSuffix)))
		return int64(len(b))
	}
	mustAppend(t, l, batchEntry(1, 1, 1, 1, 100))
	if got, want := size(1), int64(segHeaderSize+3<<10); got != want {
		t.Fatalf("active segment file %d bytes, want %d (preallocated)", got, want)
	}
	// Fill the first segment and roll.
	i := uint64(2)
	for ; l.Size() < 7<<10; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 100))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	for ; len(must[[]string](t)(fs.ReadDir("/p"))) < 7; i++ { // a second segment's three files
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 100))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := size(1), l.segSize(0); got != want {
		t.Fatalf("sealed segment file %d bytes, its frames end at %d", got, want)
	}
	// The trim is durable with the roll.
	crashed := fs.Crash()
	last := i - 1
	if got := must[[]byte](t)(crashed.ReadFile(filepath.Join("/p", segBaseName(1)+segSuffix))); int64(len(got)) != size(1) {
		t.Fatalf("sealed segment after a crash: %d bytes, want %d", len(got), size(1))
	}
	second := must[uint64](t)(l.segmentBase(1))
	if size(second) <= l.activeSize() {
		t.Fatalf("active segment file %d bytes, frames %d: not preallocated", size(second), l.activeSize())
	}
	l.Close()
	if size(second) != l.activeSize() {
		t.Fatalf("after Close the active segment file has %d bytes, its frames %d", size(second), l.activeSize())
	}
	// After the crash the zeros past the frames end the log.
	o.FS = crashed
	l = mustOpen(t, "/p", o)
	if got := must[uint64](t)(l.LastIndex()); got != last {
		t.Fatalf("last after crash %d, want %d", got, last)
	}
	checkInvariants(t, l, 0)
	// Space reserved ahead takes a write a full filesystem refuses.
	mustAppend(t, l, batchEntry(last+1, 1, 1, 1, 100))
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed.SetSpace(0)
	mustAppend(t, l, batchEntry(last+2, 1, 1, 1, 100))
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestPreallocateUnsupported: a filesystem without fallocate, or one
// failing it, leaves the log writing without preallocation; it tries once.
func TestPreallocateUnsupported(t *testing.T) {
	for _, fail := range []error{vfs.ErrNoPreallocate, syscall.ENOSPC} {
		t.Run(fmt.Sprint(fail), func(t *testing.T) {
			fs := faultfs.New()
			calls := 0
			fs.SetRule(func(op faultfs.Op, path string, size int) (int, error) {
				if op == faultfs.OpPreallocate {
					calls++
					return 0, fail
				}
				return 0, nil
			})
			o := memOpts(fs)
			o.SegmentBytes = 4 << 10
			l := mustOpen(t, "/u", o)
			for i := uint64(1); i <= 100; i++ {
				mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 100))
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			if calls != 1 {
				t.Fatalf("%d preallocation attempts, want 1", calls)
			}
			seg := filepath.Join("/u", segBaseName(must[uint64](t)(l.segmentBase(-1)))+segSuffix)
			if got := int64(len(must[[]byte](t)(fs.ReadFile(seg)))); got != l.activeSize() {
				t.Fatalf("active segment file %d bytes, frames %d", got, l.activeSize())
			}
			l.Close()
		})
	}
}

// segmentBase returns the base index of the k-th segment (k < 0: from the
// end).
func (l *Log) segmentBase(k int) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k < 0 {
		k += len(l.mu.segs)
	}
	if k < 0 || k >= len(l.mu.segs) {
		return 0, errors.New("no such segment")
	}
	return l.mu.segs[k].BaseIndex, nil
}

// segSize returns the size of the k-th segment's frames (header included).
func (l *Log) segSize(k int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.segs[k].size
}

// activeSize returns the size of the active segment's frames (header
// included).
func (l *Log) activeSize() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.activeLocked().size
}
