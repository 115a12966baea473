package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Recovery point ("recovery"): where the active segment was last known
// durable, and the log's state there. A flush rewrites it in place after
// its fsync succeeded (without fsyncing it: a stale or lost record only
// means a longer scan); Close fsyncs it. Open scans the active segment only
// from the recovery point on. Whatever may put other bytes below a
// recorded position (a suffix truncation, a log reset) first invalidates
// the record durably.
//
//	[0:4)   magic "SLRP"
//	[4:12)  active segment base index
//	[12:20) pos: frames of the segment below pos are durable
//	[20:28) last index at pos
//	[28:36) its term
//	[36:44) next offset at pos
//	[44:52) max timestamp of the segment's batches below pos
//	[52:60) position of the last frame below pos (0: none)
//	[60:64) CRC32C of [0:60)
const (
	recoveryFile = "recovery"
	recoverySize = 64
)

// recoverySyncBytes: a flush fsyncs the recovery point when it moved this
// far since it was last fsynced (or into a new segment). A variable for
// tests.
var recoverySyncBytes uint64 = 32 << 20

// recoveryWriteBytes: a flush rewrites the recovery point when it moved
// this far since it was last written (or into a new segment, or when it
// is fsynced). Writing it after every flush dirtied one more file per log
// and flush, which a syncfs then had to write back. A variable for tests.
var recoveryWriteBytes uint64 = 1 << 20

var recoveryMagic = [4]byte{'S', 'L', 'R', 'P'}

type recoveryPoint struct {
	Base, Pos, LastIndex, LastTerm, Next uint64
	MaxTs                                int64
	LastFrame                            uint64
}

func (r *recoveryPoint) encode() []byte {
	b := make([]byte, recoverySize)
	copy(b, recoveryMagic[:])
	for i, v := range []uint64{r.Base, r.Pos, r.LastIndex, r.LastTerm, r.Next, uint64(r.MaxTs), r.LastFrame} {
		binary.LittleEndian.PutUint64(b[4+8*i:], v)
	}
	binary.LittleEndian.PutUint32(b[60:], crc(b[:60]))
	return b
}

func decodeRecovery(b []byte) (recoveryPoint, error) {
	if len(b) < recoverySize || [4]byte(b[:4]) != recoveryMagic || crc(b[:60]) != binary.LittleEndian.Uint32(b[60:]) {
		return recoveryPoint{}, errors.New("no valid recovery point")
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[4+8*i:]) }
	return recoveryPoint{Base: u(0), Pos: u(1), LastIndex: u(2), LastTerm: u(3), Next: u(4), MaxTs: int64(u(5)), LastFrame: u(6)}, nil
}

// openRecoveryLocked opens the recovery file and returns its record.
func (l *Log) openRecoveryLocked() (recoveryPoint, bool, error) {
	f, err := l.fs.OpenFile(filepath.Join(l.dir, recoveryFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return recoveryPoint{}, false, err
	}
	l.recf = f
	b := make([]byte, recoverySize)
	if err := readFullAt(f, b, 0); err != nil {
		return recoveryPoint{}, false, nil
	}
	rp, err := decodeRecovery(b)
	return rp, err == nil, nil
}

// recoveryPointLocked describes the active segment as written so far; ok is
// false while the last frame's position is unknown (after a truncation,
// until the next append).
func (l *Log) recoveryPointLocked() (recoveryPoint, bool) {
	a := l.activeLocked()
	return recoveryPoint{
		Base: a.BaseIndex, Pos: uint64(a.size), LastIndex: l.mu.lastIndex, LastTerm: l.mu.lastTerm,
		Next: l.mu.next, MaxTs: a.maxTs, LastFrame: uint64(max(l.mu.lastFrame, 0)),
	}, l.mu.lastFrame >= 0
}

// invalidateRecoveryLocked durably erases the recovery point before the
// active segment's bytes below it change.
func (l *Log) invalidateRecoveryLocked() error {
	l.mu.rpGen++
	l.mu.rpSynced = recoveryPoint{}
	l.mu.rpWritten = recoveryPoint{}
	if _, err := l.recf.WriteAt(make([]byte, recoverySize), 0); err != nil {
		return err
	}
	return l.recf.Sync()
}

// resumeActiveLocked restores the active segment's state at a recovery
// point: it verifies the last frame below it, keeps the valid index
// entries below it and returns the point to scan on from. ok is false when
// the record does not fit the segment; the caller then scans it all.
func (l *Log) resumeActiveLocked(rp recoveryPoint) (p point, term uint64, ok bool, err error) {
	a := l.activeLocked()
	pos := int64(rp.Pos)
	if rp.Base != a.BaseIndex || pos < segHeaderSize || pos > a.size || rp.LastIndex+1 < a.BaseIndex {
		return p, 0, false, nil
	}
	if rp.LastIndex >= a.BaseIndex { // check the last frame below pos
		lf := int64(rp.LastFrame)
		if lf < segHeaderSize || lf+frameOverhead > pos {
			return p, 0, false, nil
		}
		b := make([]byte, pos-lf)
		if err := readFullAt(a.f, b, lf); err != nil {
			return p, 0, false, err
		}
		m, _, n, derr := decodeFrame(b)
		if derr != nil || n != len(b) || m.Index != rp.LastIndex || m.Term != rp.LastTerm {
			return p, 0, false, nil
		}
	} else if pos != segHeaderSize || rp.LastTerm != a.PrevTerm {
		return p, 0, false, nil
	}
	if err := a.openIndexesLocked(l.fs, false); err != nil {
		return p, 0, false, err
	}
	a.lastIdxPos, a.lastIdxTs = segHeaderSize, noTimestamp
	counts := [2]*int64{&a.oiCount, &a.tiCount}
	files := [2]File{a.oi, a.ti}
	refs := [2]fileRef{{a, 'o'}, {a, 't'}}
	var keep [2]int64
	var last [2]idxEntry
	for i := range files {
		if keep[i], last[i], err = validPrefix(files[i], *counts[i], pos, i == 1); err != nil {
			return p, 0, false, err
		}
	}
	// Index entries are written every indexWriteBytes, so a crash may
	// have lost those of the last frames below pos, in either file. Find
	// the last point x where both files are complete: the earlier of
	// their last entries (each write ends both at the same point, see
	// flushIndexLocked). At x the time index gives the exact max
	// timestamp before it; frames from x on are scanned and indexed again.
	x := int64(segHeaderSize)
	if keep[0] > 0 && keep[1] > 0 {
		x = int64(min(last[0].Pos, last[1].Pos))
	}
	for {
		for i := range files {
			if keep[i], last[i], err = prefixUpTo(files[i], keep[i], x, refs[i]); err != nil {
				return p, 0, false, err
			}
		}
		// x has an offset index entry unless the files disagree (written
		// by an older version, or damaged): then back up to the last one.
		if keep[0] == 0 || int64(last[0].Pos) == x {
			break
		}
		x = int64(last[0].Pos)
	}
	if keep[0] == 0 {
		x, keep[1] = segHeaderSize, 0
	}
	for i := range files {
		if keep[i] < *counts[i] {
			// Entries past x may describe bytes a crash lost: drop them
			// durably before new frames take their places.
			if err := files[i].Truncate(keep[i] * indexEntrySize); err != nil {
				return p, 0, false, err
			}
			if err := files[i].Sync(); err != nil {
				return p, 0, false, err
			}
			*counts[i] = keep[i]
		}
	}
	if keep[0] > 0 {
		a.lastIdxPos = int64(last[0].Pos)
	}
	if keep[1] > 0 {
		a.lastIdxTs = int64(last[1].A)
	}
	a.idx = indexOK
	a.idxWrittenAt = x
	switch {
	case x == pos:
		l.mu.lastFrame = int64(rp.LastFrame)
		return point{pos: pos, index: rp.LastIndex + 1, offset: rp.Next, tsBefore: rp.MaxTs}, rp.LastTerm, true, nil
	case keep[0] == 0:
		l.mu.lastFrame = 0
		return a.startPoint(), a.PrevTerm, true, nil
	}
	// A frame starts at x (index points are frame starts) and it is below
	// pos, so the scan sets lastFrame.
	l.mu.lastFrame = -1
	return point{pos: x, index: last[0].B, offset: last[0].A, tsBefore: a.lastIdxTs}, a.PrevTerm, true, nil
}

// prefixUpTo returns how many of the first n entries of an index file
// lie at or below pos (entries ascend by position), and the last of them.
func prefixUpTo(f File, n, pos int64, ref fileRef) (int64, idxEntry, error) {
	var ferr error
	k := searchN(n, func(j int64) bool {
		e, err := idxAt(f, n, nil, j, ref)
		if err != nil {
			ferr = err
			return false
		}
		return int64(e.Pos) <= pos
	})
	if ferr != nil || k == 0 {
		return k, idxEntry{}, ferr
	}
	e, err := idxAt(f, n, nil, k-1, ref)
	return k, e, err
}

// validPrefix returns how many leading entries of an index file are valid
// (CRC, order) and lie at or below upto, and the last of them.
func validPrefix(f File, n, upto int64, timeIndex bool) (int64, idxEntry, error) {
	buf := make([]byte, 256*indexEntrySize)
	var prev idxEntry
	for i := int64(0); i < n; {
		c := min(int64(len(buf)/indexEntrySize), n-i)
		if err := readFullAt(f, buf[:c*indexEntrySize], i*indexEntrySize); err != nil {
			return 0, prev, fmt.Errorf("reading index: %w", err)
		}
		for j := int64(0); j < c; j++ {
			e, err := decodeIdxEntry(buf[j*indexEntrySize:])
			if err != nil || int64(e.Pos) > upto || checkIdxOrder(prev, e, i+j == 0, upto, timeIndex) != nil {
				return i + j, prev, nil
			}
			prev = e
		}
		i += c
	}
	return n, prev, nil
}
