package storage

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// fill appends n batches of size bytes, one segment each (SegmentBytes 1).
func fill(t *testing.T, l *Log, from, n uint64, ts func(i uint64) int64) {
	t.Helper()
	for i := from; i < from+n; i++ {
		mustAppend(t, l, batchEntry(i, 1, 1, ts(i), 100))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestRetention(t *testing.T) {
	segSize := int64(segHeaderSize + frameOverhead + 100)
	for _, tc := range []struct {
		name          string
		snaps         []uint64
		safe          uint64
		ms, bytes     int64
		wantDeleted   int
		wantFirstIdx  uint64
		wantStartOffs uint64
	}{
		{"no snapshot: nothing", nil, 10, 0, 1, 0, 1, 0},
		{"by size up to the snapshot", []uint64{4}, 10, 0, 1, 4, 5, 4},
		{"by size up to the safe index", []uint64{3, 8}, 5, 0, 1, 3, 4, 3},
		{"by size keeps retention.bytes", []uint64{7, 9}, 9, 0, 3 * segSize, 7, 8, 7},
		{"only up to a snapshot", []uint64{5, 9}, 9, 0, 3 * segSize, 5, 6, 5},
		{"by age", []uint64{4, 9}, 9, 5500, 0, 4, 5, 4}, // now=10s, entry i at i s
		{"unlimited", []uint64{9}, 9, 0, 0, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.UnixMilli(10_000)}
			o := Options{FS: faultfs.New(), SegmentBytes: 1, Now: clock.Now}
			l := mustOpen(t, "/r", o)
			defer l.Close()
			fill(t, l, 1, 10, func(i uint64) int64 { return int64(i) * 1000 })
			for _, i := range tc.snaps {
				if err := l.CreateSnapshot(i, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			n, err := l.ApplyRetention(tc.safe, tc.ms, tc.bytes)
			if err != nil || n != tc.wantDeleted {
				t.Fatalf("deleted %d %v, want %d", n, err, tc.wantDeleted)
			}
			if got := must[uint64](t)(l.FirstIndex()); got != tc.wantFirstIdx {
				t.Fatalf("first %d, want %d", got, tc.wantFirstIdx)
			}
			if got := l.StartOffset(); got != tc.wantStartOffs {
				t.Fatalf("start %d, want %d", got, tc.wantStartOffs)
			}
			// The log starts right after the snapshot raft would send.
			snap := must[*raftpb.Snapshot](t)(l.StartSnapshot())
			if got := snap.GetMetadata().GetIndex(); n > 0 && got != tc.wantFirstIdx-1 {
				t.Fatalf("StartSnapshot() at %d, want %d", got, tc.wantFirstIdx-1)
			}
			if _, err := l.Read(tc.wantStartOffs, 100, 1); err != nil {
				t.Fatal(err)
			}
			if tc.wantStartOffs > 0 {
				var re *OffsetOutOfRangeError
				if _, err := l.Read(tc.wantStartOffs-1, 100, 1); !errors.As(err, &re) || re.Start != tc.wantStartOffs || re.End != 10 {
					t.Fatalf("read below start: %v", err)
				}
			}
		})
	}
}

// TestSnapshotsAtSegmentEnds: the snapshots at segment ends stay while
// retention may still start the log after them, survive a reopen, and the
// others go; StartSnapshot() is the one before the first index and
// Snapshot() the newest.
func TestSnapshotsAtSegmentEnds(t *testing.T) {
	fs := faultfs.New()
	o := Options{FS: fs, SegmentBytes: 1}
	l := mustOpen(t, "/b", o)
	fill(t, l, 1, 10, func(i uint64) int64 { return 0 })
	if got := l.SegmentBaseAfter(3); got != 4 {
		t.Fatalf("SegmentBaseAfter(3) = %d, want 4", got)
	}
	if got := l.SegmentBaseAfter(10); got != 0 {
		t.Fatalf("SegmentBaseAfter(10) = %d, want 0 (10 is in the active segment)", got)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	for _, i := range []uint64{2, 4, 6} {
		if err := l.CreateSnapshot(i, cs, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.ApplyRetention(4, 0, 1); err != nil || n != 4 {
		t.Fatalf("retention deleted %d: %v, want 4", n, err)
	}
	l.Close()
	l = mustOpen(t, "/b", o)
	defer l.Close()
	snap := must[*raftpb.Snapshot](t)(l.StartSnapshot())
	if snap.GetMetadata().GetIndex() != 4 || string(snap.GetData()) != "\x04" || !slices.Equal(snap.GetMetadata().GetConfState().GetVoters(), cs.GetVoters()) {
		t.Fatalf("StartSnapshot() = %v, want the one at 4", snap)
	}
	if latest := must[*raftpb.Snapshot](t)(l.Snapshot()); latest.GetMetadata().GetIndex() != 6 {
		t.Fatalf("Snapshot() at %d, want 6", latest.GetMetadata().GetIndex())
	}
	names := must[[]string](t)(fs.ReadDir("/b"))
	var snaps []string
	for _, n := range names {
		if _, ok := parseSnapName(n); ok {
			snaps = append(snaps, n)
		}
	}
	if len(snaps) != 2 || snaps[0] != snapName(4) || snaps[1] != snapName(6) {
		t.Fatalf("snapshot files %v, want those at 4 and 6", snaps)
	}
}

func TestSegmentAgeRoll(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_000_000)}
	o := Options{FS: faultfs.New(), SegmentAge: time.Minute, Now: clock.Now}
	l := mustOpen(t, "/a", o)
	defer l.Close()
	fill(t, l, 1, 3, func(i uint64) int64 { return 0 })
	clock.t = clock.t.Add(time.Minute)
	fill(t, l, 4, 2, func(i uint64) int64 { return 0 })
	l.mu.Lock()
	n := len(l.mu.segs)
	l.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
}

func TestDeleteBefore(t *testing.T) {
	fs := faultfs.New()
	o := Options{FS: fs, SegmentBytes: 1}
	l := mustOpen(t, "/d", o)
	fill(t, l, 1, 10, func(i uint64) int64 { return 0 })
	if err := l.CreateSnapshot(6, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteBefore(11, 10); !isRange(err) {
		t.Fatalf("beyond the end: %v", err)
	}
	if err := l.DeleteBefore(8, 10); err != nil {
		t.Fatal(err)
	}
	// Segments wholly below offset 8 go, but not past the snapshot (6).
	if first := must[uint64](t)(l.FirstIndex()); first != 7 {
		t.Fatalf("first %d, want 7", first)
	}
	if l.StartOffset() != 8 {
		t.Fatalf("start %d", l.StartOffset())
	}
	l.Close()
	l = mustOpen(t, "/d", Options{FS: fs.Crash(), SegmentBytes: 1})
	defer l.Close()
	if l.StartOffset() != 8 {
		t.Fatalf("start after crash %d", l.StartOffset())
	}
}

func TestApplySnapshotCrashSafe(t *testing.T) {
	fs := faultfs.New()
	o := Options{FS: fs, SegmentBytes: 300}
	l := mustOpen(t, "/s", o)
	fill(t, l, 1, 10, func(i uint64) int64 { return int64(i) })
	cs := &raftpb.ConfState{Voters: []uint64{1, 2}}
	snap := &raftpb.Snapshot{Data: []byte("st"), Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(50)), Term: new(uint64(4)), ConfState: cs}}
	// Crash right after the state file records the pending reset: the
	// segment files are not removed yet.
	var crashed *faultfs.FS
	fs.SetRule(func(op faultfs.Op, path string, _ int) (int, error) {
		if op == faultfs.OpRemove && crashed == nil {
			crashed = fs.Crash()
			return 0, faultfs.ErrInjected
		}
		return 0, nil
	})
	_ = l.ApplySnapshot(snap, 777)
	fs.SetRule(nil)
	l.Close()
	if crashed == nil {
		t.Fatal("no crash point")
	}
	l = mustOpen(t, "/s", Options{FS: crashed, SegmentBytes: 300})
	defer l.Close()
	first, last := must[uint64](t)(l.FirstIndex()), must[uint64](t)(l.LastIndex())
	if first != 51 || last != 50 || l.NextOffset() != 777 || l.StartOffset() != 777 {
		t.Fatalf("after crash: first %d last %d next %d start %d", first, last, l.NextOffset(), l.StartOffset())
	}
	if tm := must[uint64](t)(l.Term(50)); tm != 4 {
		t.Fatalf("term(50) = %d", tm)
	}
	got := must[*raftpb.Snapshot](t)(l.Snapshot())
	if got.GetMetadata().GetIndex() != 50 || string(got.GetData()) != "st" {
		t.Fatalf("snapshot %v", got)
	}
	mustAppend(t, l, batchEntry(51, 5, 3, 1, 10))
	if l.NextOffset() != 780 {
		t.Fatalf("next %d", l.NextOffset())
	}
}

// TestReadersSurviveRetention reads concurrently with appends, rolls,
// retention and DeleteBefore; a read either returns correct bytes or an
// out-of-range error. Run with -race.
func TestReadersSurviveRetention(t *testing.T) {
	o := Options{FS: faultfs.New(), SegmentBytes: 2000, CacheBytes: 500}
	l := mustOpen(t, "/rr", o)
	defer l.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 8)
	for r := range 3 {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				start, next := l.StartOffset(), l.NextOffset()
				if next == start {
					continue
				}
				off := start + uint64(k*7+r)%(next-start)
				bs, err := l.Read(off, next, 3000)
				if isRange(err) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				for _, b := range bs {
					if want := payload(b.Index, 200); string(b.Data) != string(want) {
						errc <- errors.New("read returned wrong bytes")
						return
					}
				}
				first, _ := l.FirstIndex()
				last, _ := l.LastIndex()
				if _, err := l.Entries(first, last+1, 4000); err != nil && !errors.Is(err, raft.ErrCompacted) {
					errc <- err
					return
				}
			}
		})
	}
	for i := uint64(1); i <= 2000; i++ {
		mustAppend(t, l, batchEntry(i, 1, 2, int64(i), 200))
		if i%50 == 0 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			if b := l.SegmentBaseAfter(i - 20); b != 0 && b-1 <= i-10 {
				if err := l.CreateSnapshot(b-1, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.ApplyRetention(i-10, 0, 20000); err != nil {
				t.Fatal(err)
			}
		}
		if i%170 == 0 {
			if err := l.DeleteBefore(l.StartOffset()+5, i-20); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

// A snapshot file of the first format (no conf state; the state file has
// it) still opens and serves.
func TestSnapshotFileOfTheFirstFormat(t *testing.T) {
	fs := faultfs.New()
	o := Options{FS: fs, SegmentBytes: 1}
	l := mustOpen(t, "/v1", o)
	fill(t, l, 1, 5, func(i uint64) int64 { return 0 })
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	if err := l.CreateSnapshot(3, cs, []byte("state@3")); err != nil {
		t.Fatal(err)
	}
	if n, err := l.ApplyRetention(3, 0, 1); err != nil || n != 3 {
		t.Fatalf("retention deleted %d: %v, want 3", n, err)
	}
	l.Close()
	// Rewrite the file as the first format wrote it: magic SLSN, CRC32C,
	// index, term, data.
	old := make([]byte, snapHeaderSize, snapHeaderSize+7)
	copy(old, snapMagicV1[:])
	binary.LittleEndian.PutUint64(old[8:], 3)
	binary.LittleEndian.PutUint64(old[16:], 1)
	old = append(old, "state@3"...)
	binary.LittleEndian.PutUint32(old[4:], crc(old[8:]))
	f := must[File](t)(fs.OpenFile("/v1/"+snapName(3), os.O_RDWR|os.O_TRUNC, 0))
	if _, err := f.WriteAt(old, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l = mustOpen(t, "/v1", o)
	defer l.Close()
	for name, get := range map[string]func() (*raftpb.Snapshot, error){"Snapshot": l.Snapshot, "StartSnapshot": l.StartSnapshot} {
		snap := must[*raftpb.Snapshot](t)(get())
		if snap.GetMetadata().GetIndex() != 3 || string(snap.GetData()) != "state@3" || !slices.Equal(snap.GetMetadata().GetConfState().GetVoters(), cs.GetVoters()) {
			t.Fatalf("%s() = %v, want the one at 3 with voters 1, 2, 3", name, snap)
		}
	}
}
