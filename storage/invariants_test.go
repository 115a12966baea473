package storage

import "testing"

// checkInvariants scans every segment: frames must run to the segment's
// size, and every index entry must sit on a frame boundary.
func checkInvariants(t *testing.T, l *Log, step int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, s := range l.mu.segs {
		if _, err := l.ensureOpenLocked(k); err != nil {
			t.Fatalf("step %d: open seg %d: %v", step, s.BaseIndex, err)
		}
		bounds := map[int64]bool{}
		_, _, _, err := scanTo(s, s.startPoint(), s.size, func(p point, _ *frameMeta) bool { bounds[p.pos] = true; return false })
		bounds[s.size] = true
		if err != nil {
			t.Fatalf("step %d: seg %d (k=%d of %d, size %d): %v", step, s.BaseIndex, k, len(l.mu.segs), s.size, err)
		}
		for _, ix := range []struct {
			f    File
			n    int64
			pend []byte
			kind byte
		}{{s.oi, s.oiCount, s.oiPend, 'o'}, {s.ti, s.tiCount, s.tiPend, 't'}} {
			n := ix.n + int64(len(ix.pend)/indexEntrySize)
			for i := int64(0); i < n; i++ {
				e, err := idxAt(ix.f, ix.n, ix.pend, i, fileRef{s, ix.kind})
				if err != nil || !bounds[int64(e.Pos)] {
					t.Fatalf("step %d: seg %d (k=%d of %d, sealed %v size %d) index %c entry %d/%d: %+v %v", step, s.BaseIndex, k, len(l.mu.segs), s.sealed, s.size, ix.kind, i, n, e, err)
				}
			}
		}
	}
}
