package storage

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// TestCrashCutEveryByte cuts the active segment at every byte of its last
// frames (a torn write) and reopens: the log must end at the last whole
// frame, serve everything before it, and accept appends again.
func TestCrashCutEveryByte(t *testing.T) {
	base := faultfs.New()
	o := memOpts(base)
	o.SegmentBytes = 1 << 20
	o.PreallocateBytes = 4 << 10 // reopened 1,500 times: keep faultfs's copies small
	l := mustOpen(t, "/c", o)
	var want []Entry
	for i := uint64(1); i <= 12; i++ {
		e := batchEntry(i, 1+i/5, uint32(i%3), int64(i), int(i*13))
		want = append(want, e)
		mustAppend(t, l, e)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	seg := filepath.Join("/c", segBaseName(1)+segSuffix)
	full := must[[]byte](t)(base.ReadFile(seg))
	// Frame boundaries.
	ends := []int64{segHeaderSize}
	for _, e := range want {
		ends = append(ends, ends[len(ends)-1]+int64(frameSize(&e)))
	}
	if ends[len(ends)-1] != int64(len(full)) {
		t.Fatalf("segment size %d, frames end at %d", len(full), ends[len(ends)-1])
	}
	from := ends[len(ends)-4] // the last three frames
	for cut := from; cut <= int64(len(full)); cut++ {
		for _, mode := range []string{"cut", "flip", "zeros"} {
			if mode == "flip" && cut == int64(len(full)) {
				continue
			}
			fs := base.Crash()
			b := append([]byte(nil), full[:cut]...)
			switch mode {
			case "flip":
				b = append([]byte(nil), full...)
				b[cut] ^= 0x40
			case "zeros": // the cut in preallocated space
				b = append(b, make([]byte, 5000)...)
			}
			fs.WriteFile(seg, b)
			fs.Remove("/c/" + recoveryFile) // as if the crash came before the last recovery point
			o.FS = fs
			l, err := Open("/c", o)
			if err != nil {
				t.Fatalf("%s at %d: open: %v", mode, cut, err)
			}
			// Whole frames before the damage survive.
			n := 0
			for n < len(want) && ends[n+1] <= cut {
				n++
			}
			if last := must[uint64](t)(l.LastIndex()); last != uint64(n) {
				t.Fatalf("%s at %d: last %d, want %d", mode, cut, last, n)
			}
			got := must[[]*raftpb.Entry](t)(l.Entries(1, uint64(n)+1, 1<<40))
			for i, e := range got {
				checkEntry(t, e.GetData(), want[i])
			}
			e := batchEntry(uint64(n)+1, 9, 1, 100, 10)
			mustAppend(t, l, e)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			l.Close()
			l = mustOpen(t, "/c", o)
			if last := must[uint64](t)(l.LastIndex()); last != uint64(n)+1 {
				t.Fatalf("%s at %d: last after append %d, want %d", mode, cut, last, n+1)
			}
			l.Close()
		}
	}
}

// TestCleanOpenSkipsScan: after a clean close the active segment is not
// scanned (only its last frame is checked); damage found later is still
// never served.
func TestCleanOpenSkipsScan(t *testing.T) {
	fs := faultfs.New()
	o := memOpts(fs)
	o.SegmentBytes = 1 << 20
	l := mustOpen(t, "/k", o)
	for i := uint64(1); i <= 100; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 100))
	}
	l.Close()
	seg := filepath.Join("/k", segBaseName(1)+segSuffix)
	b := must[[]byte](t)(fs.ReadFile(seg))
	b[segHeaderSize+49*(frameOverhead+100)+frameOverhead+7] ^= 1 // damage entry 50's data
	fs.WriteFile(seg, b)
	var read int
	fs.SetRule(func(op faultfs.Op, path string, size int) (int, error) {
		if op == faultfs.OpRead && path == seg {
			read += size
		}
		return 0, nil
	})
	o.CacheBytes = -1
	l = mustOpen(t, "/k", o)
	defer l.Close()
	// The header and the frames after the last index entry (the index
	// entries of the last frames are checked again).
	if read > segHeaderSize+DefaultIndexIntervalBytes+frameOverhead+100 {
		t.Fatalf("clean open read %d bytes of the active segment", read)
	}
	if last := must[uint64](t)(l.LastIndex()); last != 100 {
		t.Fatalf("last %d", last)
	}
	var ce *CorruptionError
	if _, err := l.Entries(50, 51, 1<<20); !errors.As(err, &ce) {
		t.Fatalf("damaged entry served: %v", err)
	}
	if got := must[[]*raftpb.Entry](t)(l.Entries(1, 50, 1<<20)); len(got) != 49 {
		t.Fatalf("%d entries", len(got))
	}
	mustAppend(t, l, batchEntry(101, 1, 1, 101, 10))
}

// TestCrashScansOnlyTheTail: after a crash, Open reads the active segment
// from the last recovery point on, not from its start.
func TestCrashScansOnlyTheTail(t *testing.T) {
	defer func(v uint64) { recoverySyncBytes = v }(recoverySyncBytes)
	recoverySyncBytes = 1 << 10
	fs := faultfs.New()
	o := memOpts(fs)
	o.SegmentBytes = 1 << 20
	l := mustOpen(t, "/t", o)
	for i := uint64(1); i <= 200; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 100))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := uint64(201); i <= 203; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 100))
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, l, batchEntry(204, 1, 1, 204, 100)) // unsynced: lost
	crashed := fs.Crash()
	l.Close()
	seg := filepath.Join("/t", segBaseName(1)+segSuffix)
	var read int
	crashed.SetRule(func(op faultfs.Op, path string, size int) (int, error) {
		if op == faultfs.OpRead && path == seg {
			read += size
		}
		return 0, nil
	})
	o.FS = crashed
	l = mustOpen(t, "/t", o)
	defer l.Close()
	if last := must[uint64](t)(l.LastIndex()); last != 203 {
		t.Fatalf("last %d, want 203", last)
	}
	if limit := segHeaderSize + DefaultIndexIntervalBytes + frameOverhead + 100 + scanBufSize; read > limit {
		t.Fatalf("open read %d bytes of a %d-byte segment (limit %d)", read, 48+203*137, limit)
	}
	for i := uint64(1); i <= 203; i++ {
		if off := must[uint64](t)(l.OffsetAt(i)); off != i-1 {
			t.Fatalf("OffsetAt(%d) = %d", i, off)
		}
	}
	mustAppend(t, l, batchEntry(204, 2, 1, 204, 10))
}

func TestCrashDropsUnsynced(t *testing.T) {
	fs := faultfs.New()
	o := memOpts(fs)
	l := mustOpen(t, "/c", o)
	for i := uint64(1); i <= 50; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 50))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := must[uint64](t)(l.LastIndex())
	for i := uint64(51); i <= 53; i++ { // no roll: stays unsynced
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 5))
	}
	crashed := fs.Crash()
	l.Close()
	o.FS = crashed
	l = mustOpen(t, "/c", o)
	defer l.Close()
	if last := must[uint64](t)(l.LastIndex()); last != synced {
		t.Fatalf("last %d after crash, want %d", last, synced)
	}
}

func TestFsyncErrorFailsTheLog(t *testing.T) {
	for _, mode := range []syncMode{syncInline, syncGroup} {
		t.Run(mode.String(), func(t *testing.T) {
			fs := faultfs.New()
			o := memOpts(fs)
			if mode == syncGroup {
				o.Syncer = NewSyncGroup()
				defer o.Syncer.Close()
			}
			l := mustOpen(t, "/f", o)
			defer l.Close()
			mustAppend(t, l, batchEntry(1, 1, 1, 1, 10))
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			syncs := 0
			fs.SetRule(func(op faultfs.Op, _ string, _ int) (int, error) {
				if op == faultfs.OpSync {
					syncs++
					return 0, syscall.EIO
				}
				return 0, nil
			})
			mustAppend(t, l, batchEntry(2, 1, 1, 2, 10))
			err := l.Sync()
			if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrFailed) {
				t.Fatalf("sync: %v", err)
			}
			fs.SetRule(nil) // the disk "recovers": the log must not
			if err := l.Append([]Entry{batchEntry(3, 1, 1, 3, 10)}); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after fsync error: %v", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrFailed) {
				t.Fatalf("sync after fsync error: %v", err)
			}
			if err := l.SaveState(nil, nil); err != nil {
				t.Fatalf("no-op SaveState: %v", err)
			}
			if _, err := l.ApplyRetention(1, 0, 1); !errors.Is(err, ErrFailed) {
				t.Fatalf("retention after fsync error: %v", err)
			}
			if syncs != 1 {
				t.Fatalf("fsync attempted %d times, want 1 (never retried)", syncs)
			}
			// Reads still work.
			if _, err := l.Entries(1, 2, 100); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWriteFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(fs *faultfs.FS)
		want  error
	}{
		{"short write", func(fs *faultfs.FS) {
			fs.SetRule(func(op faultfs.Op, path string, size int) (int, error) {
				if op == faultfs.OpWrite && filepath.Ext(path) == segSuffix {
					return size / 2, faultfs.ErrInjected
				}
				return 0, nil
			})
		}, faultfs.ErrInjected},
		// Without preallocation: with it, the write lands in reserved space
		// (TestPreallocate).
		{"ENOSPC", func(fs *faultfs.FS) { fs.SetSpace(100) }, syscall.ENOSPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := faultfs.New()
			o := memOpts(fs)
			o.PreallocateBytes = -1
			l := mustOpen(t, "/w", o)
			for i := uint64(1); i <= 5; i++ {
				mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 30))
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			tc.setup(fs)
			err := l.Append([]Entry{batchEntry(6, 1, 1, 6, 300)})
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrFailed) {
				t.Fatalf("append: %v", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrFailed) {
				t.Fatalf("sync: %v", err)
			}
			crashed := fs.Crash()
			l.Close()
			o.FS = crashed
			l = mustOpen(t, "/w", o)
			defer l.Close()
			if last := must[uint64](t)(l.LastIndex()); last != 5 {
				t.Fatalf("last after restart %d, want 5", last)
			}
			mustAppend(t, l, batchEntry(6, 1, 1, 6, 30))
		})
	}
}

// TestSealedCorruption: a damaged frame in a sealed segment is reported
// with its file and position and never served; open still succeeds.
func TestSealedCorruption(t *testing.T) {
	fs := faultfs.New()
	o := memOpts(fs)
	l := mustOpen(t, "/s", o)
	for i := uint64(1); i <= 40; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, int64(i), 100))
	}
	l.Close()
	seg := filepath.Join("/s", segBaseName(1)+segSuffix)
	b := must[[]byte](t)(fs.ReadFile(seg))
	pos := segHeaderSize + 2*(frameOverhead+100) + frameOverhead + 10 // inside entry 3's data
	b[pos] ^= 1
	fs.WriteFile(seg, b)
	o.CacheBytes = -1
	l = mustOpen(t, "/s", o)
	defer l.Close()
	var ce *CorruptionError
	if _, err := l.Entries(1, 5, 1<<20); !errors.As(err, &ce) || ce.File != seg || ce.Pos != int64(segHeaderSize+2*(frameOverhead+100)) {
		t.Fatalf("Entries over the damage: %v", err)
	}
	if _, err := l.Read(2, 10, 1<<20); !errors.As(err, &ce) || ce.File != seg {
		t.Fatalf("Read at the damage: %v", err)
	}
	bs, err := l.Read(0, 10, 1<<20) // returns what precedes the damage
	if err != nil || len(bs) != 2 {
		t.Fatalf("Read before the damage: %d batches, %v", len(bs), err)
	}
	if got := must[[]*raftpb.Entry](t)(l.Entries(1, 3, 1<<20)); len(got) != 2 {
		t.Fatalf("entries before the damage: %d", len(got))
	}
}

// TestIndexRebuild: missing or damaged index files of sealed segments are
// rebuilt on first use.
func TestIndexRebuild(t *testing.T) {
	fs := faultfs.New()
	o := memOpts(fs)
	l := mustOpen(t, "/x", o)
	var want []Entry
	for i := uint64(1); i <= 60; i++ {
		e := batchEntry(i, 1, 2, int64(i*10), 70)
		want = append(want, e)
		mustAppend(t, l, e)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	var bases []uint64
	for _, s := range l.mu.segs {
		bases = append(bases, s.BaseIndex)
	}
	l.Close()
	if len(bases) < 4 {
		t.Fatalf("want several segments, got %d", len(bases))
	}
	fs.Remove(segPathIn("/x", bases[0]) + offIndexSuffix)
	b := must[[]byte](t)(fs.ReadFile(segPathIn("/x", bases[1]) + timeIndexSuffix))
	b[len(b)-3] ^= 0xff
	fs.WriteFile(segPathIn("/x", bases[1])+timeIndexSuffix, b)
	fs.WriteFile(segPathIn("/x", bases[2])+offIndexSuffix, []byte("garbage"))
	o.CacheBytes = -1
	l = mustOpen(t, "/x", o)
	defer l.Close()
	for _, e := range want {
		off := must[uint64](t)(l.OffsetAt(e.Index))
		if off != 2*(e.Index-1) {
			t.Fatalf("OffsetAt(%d) = %d", e.Index, off)
		}
		bs := must[[]Batch](t)(l.Read(off+1, off+2, 1))
		if len(bs) != 1 || bs[0].Index != e.Index {
			t.Fatalf("Read(%d): %+v", off+1, bs)
		}
		got, ok, err := l.OffsetForTime(e.MaxTimestamp)
		if err != nil || !ok || got != off {
			t.Fatalf("OffsetForTime(%d) = %d %v %v, want %d", e.MaxTimestamp, got, ok, err, off)
		}
	}
}
