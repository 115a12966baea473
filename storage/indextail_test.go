package storage

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// TestCrashRebuildsIndexTail: a flush writes index entries only every
// indexWriteBytes, so a crash loses those of the last frames, in either
// index file. Open indexes them again from the last point where both files
// are complete: the offset index stays dense and the time index exact
// (the max timestamp before every indexed point), including after the
// last entries of one file or the recovery point were lost too.
func TestCrashRebuildsIndexTail(t *testing.T) {
	defer func(v int64) { indexWriteBytes = v }(indexWriteBytes)
	indexWriteBytes = 2 << 10
	defer func(v uint64) { recoverySyncBytes = v }(recoverySyncBytes)
	recoverySyncBytes = 3 << 10 // the index files are fsynced with the point
	for _, damage := range []string{"none", "offset", "time", "both", "norecovery"} {
		t.Run(damage, func(t *testing.T) {
			fs := faultfs.New()
			o := memOpts(fs)
			o.IndexIntervalBytes = 200
			o.SegmentBytes = 1 << 20
			l := mustOpen(t, "/x", o)
			ts := int64(0)
			for i := uint64(1); i <= 300; i++ {
				if i%50 < 20 { // runs of unchanged timestamps
					ts += int64(i % 3)
				}
				e := batchEntry(i, 1, uint32(1+i%2), ts, 60)
				mustAppend(t, l, e)
				if i%7 == 0 {
					if err := l.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			}
			synced := uint64(294)
			crashed := fs.Crash()
			l.Close()
			base := filepath.Join("/x", segBaseName(1))
			cut := func(path string, entries int) {
				b := must[[]byte](t)(crashed.ReadFile(path))
				crashed.WriteFile(path, b[:max(0, len(b)-entries*indexEntrySize)])
			}
			switch damage {
			case "offset":
				cut(base+offIndexSuffix, 3)
			case "time":
				cut(base+timeIndexSuffix, 2)
			case "both":
				cut(base+offIndexSuffix, 1)
				cut(base+timeIndexSuffix, 4)
			case "norecovery":
				crashed.Remove("/x/" + recoveryFile)
			}
			o.FS = crashed
			l = mustOpen(t, "/x", o)
			ents := entriesUpTo(synced)
			checkIndexTail(t, l, ents, o.IndexIntervalBytes)
			l.Close()
			l = mustOpen(t, "/x", o) // clean reopen: the rebuilt entries were written
			defer l.Close()
			checkIndexTail(t, l, ents, o.IndexIntervalBytes)
		})
	}
}

// entriesUpTo rebuilds the entries TestCrashRebuildsIndexTail appended.
func entriesUpTo(last uint64) []Entry {
	var ents []Entry
	ts := int64(0)
	for i := uint64(1); i <= last; i++ {
		if i%50 < 20 {
			ts += int64(i % 3)
		}
		ents = append(ents, batchEntry(i, 1, uint32(1+i%2), ts, 60))
	}
	return ents
}

// checkIndexTail checks that l holds ents, that its active segment's offset
// index has no gap wider than an interval and a frame, that every time
// index lookup of an indexed point is exact, and OffsetForTime.
func checkIndexTail(t *testing.T, l *Log, ents []Entry, interval int) {
	t.Helper()
	if last := must[uint64](t)(l.LastIndex()); last != uint64(len(ents)) {
		t.Fatalf("last %d, want %d", last, len(ents))
	}
	// Positions, offsets and max timestamps before each frame.
	pos := map[int64]int{} // frame start -> entry
	p, off, tsBefore := int64(segHeaderSize), uint64(0), []int64{}
	offs := []uint64{}
	maxTs := int64(noTimestamp)
	for i, e := range ents {
		pos[p] = i
		offs = append(offs, off)
		tsBefore = append(tsBefore, maxTs)
		p += int64(frameSize(&e))
		off += uint64(e.Records)
		maxTs = max(maxTs, e.MaxTimestamp)
	}
	for i := range ents {
		if got := must[uint64](t)(l.OffsetAt(uint64(i + 1))); got != offs[i] {
			t.Fatalf("OffsetAt(%d) = %d, want %d", i+1, got, offs[i])
		}
	}
	for ts := ents[0].MaxTimestamp - 1; ts <= maxTs+1; ts++ {
		wantOff, wantOK := uint64(0), false
		for i, e := range ents {
			if e.MaxTimestamp >= ts {
				wantOff, wantOK = offs[i], true
				break
			}
		}
		got, ok, err := l.OffsetForTime(ts)
		if err != nil || ok != wantOK || (ok && got != wantOff) {
			t.Fatalf("OffsetForTime(%d) = %d %v %v, want %d %v", ts, got, ok, err, wantOff, wantOK)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.activeLocked()
	n := a.oiCount + int64(len(a.oiPend)/indexEntrySize)
	prev := int64(segHeaderSize)
	for j := int64(0); j < n; j++ {
		e := must[idxEntry](t)(idxAt(a.oi, a.oiCount, a.oiPend, j, fileRef{a, 'o'}))
		i, ok := pos[int64(e.Pos)]
		if !ok || e.A != offs[i] || e.B != uint64(i+1) {
			t.Fatalf("offset index entry %d %+v does not match the frame there", j, e)
		}
		if gap := int64(e.Pos) - prev; gap > int64(interval+frameSize(&ents[i])) {
			t.Fatalf("offset index gap of %d bytes before %d", gap, e.Pos)
		}
		prev = int64(e.Pos)
		q, err := a.seekIndexLocked(e.B, true)
		if err != nil || q.pos != int64(e.Pos) || q.tsBefore != tsBefore[i] {
			t.Fatalf("seek to entry %d: %+v %v, want pos %d tsBefore %d", e.B, q, err, e.Pos, tsBefore[i])
		}
	}
	if gap := a.size - prev; gap > int64(interval+2*frameSize(&ents[0])) {
		t.Fatalf("offset index ends %d bytes before the segment's end", gap)
	}
}
