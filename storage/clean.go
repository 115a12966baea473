package storage

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
)

// Clean-shutdown marker ("clean"), written atomically by Close after the
// active segment and its indexes are fsynced, removed (durably) by Open
// before any write. With it, Open trusts the active segment's indexes and
// skips the scan; without it (a crash), Open scans the whole active
// segment.
//
//	[0:4)   magic "SLCL"
//	[4:12)  active segment base index
//	[12:20) active segment size
//	[20:28) last index
//	[28:36) last term
//	[36:44) next offset
//	[44:52) max timestamp of the active segment
//	[52:56) CRC32C of [0:52)
const (
	cleanFile = "clean"
	cleanSize = 56
)

var cleanMagic = [4]byte{'S', 'L', 'C', 'L'}

type cleanMarker struct {
	Base, Size, LastIndex, LastTerm, Next uint64
	MaxTs                                 int64
}

func (c *cleanMarker) encode() []byte {
	b := make([]byte, cleanSize)
	copy(b, cleanMagic[:])
	for i, v := range []uint64{c.Base, c.Size, c.LastIndex, c.LastTerm, c.Next, uint64(c.MaxTs)} {
		binary.LittleEndian.PutUint64(b[4+8*i:], v)
	}
	binary.LittleEndian.PutUint32(b[52:], crc(b[:52]))
	return b
}

func decodeClean(b []byte) (cleanMarker, error) {
	if len(b) != cleanSize || [4]byte(b[:4]) != cleanMagic || crc(b[:52]) != binary.LittleEndian.Uint32(b[52:]) {
		return cleanMarker{}, errors.New("bad clean marker")
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[4+8*i:]) }
	return cleanMarker{Base: u(0), Size: u(1), LastIndex: u(2), LastTerm: u(3), Next: u(4), MaxTs: int64(u(5))}, nil
}

// writeCleanLocked records a clean shutdown; the active segment and its
// indexes must be durable.
func (l *Log) writeCleanLocked() error {
	a := l.activeLocked()
	for _, f := range []File{a.oi, a.ti} {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	c := cleanMarker{Base: a.BaseIndex, Size: uint64(a.size), LastIndex: l.mu.lastIndex, LastTerm: l.mu.lastTerm, Next: l.mu.next, MaxTs: a.maxTs}
	return writeFileAtomic(l.fs, l.dir, cleanFile, c.encode())
}

// takeCleanLocked reads and durably removes the clean marker. ok reports
// whether it was present and valid.
func (l *Log) takeCleanLocked() (c cleanMarker, ok bool, err error) {
	path := filepath.Join(l.dir, cleanFile)
	b, err := readWholeFile(l.fs, path)
	if os.IsNotExist(err) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	c, derr := decodeClean(b)
	if err := l.fs.Remove(path); err != nil {
		return c, false, err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return c, false, err
	}
	return c, derr == nil, nil
}

// resumeActiveLocked restores the active segment's state from a clean
// marker instead of scanning it. It reports false when the segment or its
// indexes do not match the marker; the caller then scans.
func (l *Log) resumeActiveLocked(c cleanMarker) (bool, error) {
	a := l.activeLocked()
	if c.Base != a.BaseIndex || int64(c.Size) != a.size || c.LastIndex+1 < a.BaseIndex {
		return false, nil
	}
	if err := a.openIndexesLocked(l.fs, false); err != nil {
		return false, err
	}
	a.lastIdxPos, a.lastIdxTs = segHeaderSize, noTimestamp
	for i, ix := range []struct {
		f     File
		count int64
		ref   fileRef
	}{{a.oi, a.oiCount, fileRef{a, 'o'}}, {a.ti, a.tiCount, fileRef{a, 't'}}} {
		n, err := validateIndexFile(ix.f, ix.ref.String(), a.size, i == 1)
		if err != nil || n != ix.count {
			return false, nil
		}
		if n == 0 {
			continue
		}
		e, err := idxAt(ix.f, n, nil, n-1, ix.ref)
		if err != nil {
			return false, nil
		}
		if i == 0 {
			a.lastIdxPos = int64(e.Pos)
		} else {
			a.lastIdxTs = int64(e.A)
		}
	}
	a.idx, a.maxTs, a.maxTsKnown = indexOK, c.MaxTs, true
	l.mu.lastIndex, l.mu.lastTerm, l.mu.next = c.LastIndex, c.LastTerm, c.Next
	return true, nil
}
