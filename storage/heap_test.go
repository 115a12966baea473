package storage

import (
	"os"
	"runtime"
	"testing"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// TestHeapAfterOpen opens a log of 10,000 segments and measures the heap
// the open log holds: per-segment bookkeeping only, no index or data.
func TestHeapAfterOpen(t *testing.T) {
	segs := 10_000
	if testing.Short() {
		segs = 2000
	}
	fs := faultfs.New()
	o := Options{FS: fs, SegmentBytes: 1, CacheBytes: -1}
	l := mustOpen(t, "/h", o)
	for i := uint64(1); i <= uint64(segs); i++ {
		mustAppend(t, l, Entry{Index: i, Term: 1, Records: 10, MaxTimestamp: int64(i), Data: make([]byte, 100)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	l = mustOpen(t, "/h", Options{FS: fs, SegmentBytes: 1})
	defer l.Close()
	after := heap()
	per := float64(after-before) / float64(segs)
	t.Logf("heap after opening %d segments: %d KiB (%.0f bytes per segment)", segs, (after-before)>>10, per)
	if os.Getenv("STORAGE_HEAP_REPORT") == "" && per > 160 {
		t.Fatalf("open costs %.0f bytes per segment", per)
	}
	// Reading the oldest and the newest data does not load the rest.
	if _, err := l.Read(0, 10, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(uint64(segs-1)*10, uint64(segs)*10, 1); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(l)
}
