package storage

import (
	"bytes"
	"math"
	"runtime"
	"testing"
	"unsafe"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// TestReadInto: ReadInto returns what Read returns, with the data in the
// caller's buffer (no allocation once dst and buf are large enough), and
// the batches stay intact while segments roll and retention deletes them.
func TestReadInto(t *testing.T) {
	fs := faultfs.New()
	o := memOpts(fs)
	o.SegmentBytes = 20 << 10
	l := mustOpen(t, "/r", o)
	defer l.Close()
	const size = 4 << 10
	for i := uint64(1); i <= 40; i++ {
		mustAppend(t, l, batchEntry(i, 1, 2, int64(i), size))
	}
	const maxBytes = 10 * size
	want := must[[]Batch](t)(l.Read(10, 60, maxBytes))
	buf := make([]byte, maxBytes+4096)
	dst := make([]Batch, 0, 32)
	got := must[[]Batch](t)(l.ReadInto(dst, buf, 10, 60, maxBytes))
	if len(got) != len(want) || len(got) < 2 {
		t.Fatalf("%d batches, want %d (> 1)", len(got), len(want))
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))+uintptr(len(buf))
	for i := range got {
		if got[i].BaseOffset != want[i].BaseOffset || got[i].Index != want[i].Index || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("batch %d: %+v, want %+v", i, got[i].BaseOffset, want[i].BaseOffset)
		}
		if p := uintptr(unsafe.Pointer(unsafe.SliceData(got[i].Data))); p < lo || p >= hi {
			t.Fatalf("batch %d data not in the caller's buffer", i)
		}
	}
	if &got[0] != &dst[:1][0] {
		t.Fatal("batches not appended to dst")
	}
	// The data goes to buf: what a read allocates is small bookkeeping
	// (file handles, index lookups), not the data.
	// TotalAlloc counts every goroutine of the process (other tests,
	// background flushes), so the least of a few measurements is taken.
	per := uint64(math.MaxUint64)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 20
		for range runs {
			if _, err := l.ReadInto(dst, buf, 10, 60, maxBytes); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		per = min(per, (after.TotalAlloc-before.TotalAlloc)/runs)
	}
	if per >= maxBytes/2 { // Read: >= maxBytes
		t.Fatalf("ReadInto allocates %d bytes per read of %d bytes into a large enough buffer", per, maxBytes)
	}
	// A buffer too small still works (it allocates).
	small := must[[]Batch](t)(l.ReadInto(nil, make([]byte, 10), 10, 60, maxBytes))
	if len(small) != len(want) || !bytes.Equal(small[len(small)-1].Data, want[len(want)-1].Data) {
		t.Fatal("ReadInto into a small buffer differs from Read")
	}
	// Retention deletes the segments the batches came from: their data,
	// in buf, does not change.
	snap := append([]byte(nil), got[0].Data...)
	for i := uint64(41); i <= 60; i++ {
		mustAppend(t, l, batchEntry(i, 1, 2, int64(i), size))
	}
	end := l.SegmentBaseAfter(35) - 1
	if err := l.CreateSnapshot(end, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := l.ApplyRetention(end, 0, 1); err != nil || n == 0 {
		t.Fatalf("retention deleted %d segments: %v", n, err)
	}
	if !bytes.Equal(got[0].Data, snap) {
		t.Fatal("batch data changed after retention")
	}
}
