package storage

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	segSuffix       = ".log"
	offIndexSuffix  = ".index"
	timeIndexSuffix = ".timeindex"
)

func segBaseName(baseIndex uint64) string { return fmt.Sprintf("%020d", baseIndex) }

// parseSegName returns the base index of a segment file name.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// indexState of a segment's index files.
type indexState uint8

const (
	indexUnchecked indexState = iota // sealed, not yet validated since open
	indexOK                          // trusted
)

// segment is one segment file and its two index files. Fields are guarded
// by Log.mu. A segment costs little until it is used: the open files and
// index state live in segFiles, allocated while the segment is open.
type segment struct {
	dir *string // the log's directory
	segHeader

	size   int64 // bytes in the segment file (header included)
	sealed bool  // not the active segment
	idx    indexState

	// maxTs is the largest batch timestamp in the segment (noTimestamp if
	// none); known for the active segment, lazily for sealed ones.
	maxTsKnown bool
	maxTs      int64

	*segFiles // nil while closed
}

// segFiles are an open segment's files and indexing state.
type segFiles struct {
	f        File // segment file
	refs     int  // readers holding f outside Log.mu
	removed  bool // unlinked: close f when refs drops to zero
	lastUsed uint64

	oi File // offset index
	ti File // time index
	// Index entries already in the files, and those not yet written.
	oiCount, tiCount int64
	oiPend, tiPend   []byte
	// Active segment only: the last indexed position and timestamp.
	lastIdxPos int64
	lastIdxTs  int64
	// alloc: the active segment's file is preallocated up to here
	// (reserveLocked); 0 = nothing known past size.
	alloc int64
	// zeroed: zeros were written up to here (zeroAheadLocked).
	zeroed int64
	// idxWrittenAt is the segment's size when its pending index entries
	// were last written.
	idxWrittenAt int64

	scratch [indexEntrySize]byte // index reads, under Log.mu
}

// fileRef names one of a segment's files without building its path until
// an error needs it.
type fileRef struct {
	s    *segment
	kind byte // 'l' segment, 'o' offset index, 't' time index
}

func (r fileRef) String() string {
	switch r.kind {
	case 'o':
		return r.s.oiPath()
	case 't':
		return r.s.tiPath()
	}
	return r.s.segPath()
}

// files returns the segment's segFiles, allocating them.
func (s *segment) files() *segFiles {
	if s.segFiles == nil {
		s.segFiles = &segFiles{}
	}
	return s.segFiles
}

func (s *segment) path() string { return segPathIn(*s.dir, s.BaseIndex) }

func (s *segment) segPath() string     { return s.path() + segSuffix }
func (s *segment) oiPath() string      { return s.path() + offIndexSuffix }
func (s *segment) tiPath() string      { return s.path() + timeIndexSuffix }
func (s *segment) empty() bool         { return s.size <= segHeaderSize }
func (s *segment) entriesStart() int64 { return segHeaderSize }

// readFullAt reads len(b) bytes at off.
func readFullAt(f File, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// closeFilesLocked closes every open file of the segment; f only if no
// reader holds it.
func (s *segment) closeFilesLocked() error {
	if s.segFiles == nil {
		return nil
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if s.oi != nil {
		keep(s.oi.Close())
		s.oi = nil
	}
	if s.ti != nil {
		keep(s.ti.Close())
		s.ti = nil
	}
	if s.f != nil && s.refs == 0 {
		keep(s.f.Close())
		s.f = nil
	}
	if s.f == nil && len(s.oiPend) == 0 && len(s.tiPend) == 0 {
		s.segFiles = nil
	}
	return first
}

// openIndexesLocked opens both index files for reading and writing.
func (s *segment) openIndexesLocked(fs FS, truncate bool) error {
	flag := os.O_RDWR | os.O_CREATE
	if truncate {
		flag |= os.O_TRUNC
	}
	h := s.files()
	for _, ix := range []struct {
		f     *File
		count *int64
		path  string
	}{{&h.oi, &h.oiCount, s.oiPath()}, {&h.ti, &h.tiCount, s.tiPath()}} {
		if *ix.f != nil {
			continue
		}
		f, err := fs.OpenFile(ix.path, flag, 0o644)
		if err != nil {
			return err
		}
		size, err := f.Size()
		if err != nil {
			f.Close()
			return err
		}
		*ix.f, *ix.count = f, size/indexEntrySize
	}
	return nil
}

// indexWriteBytes: a flush writes the active segment's pending index
// entries when the segment grew this much since they were last written;
// rolls, truncations and Close write them too. Writing them at every flush
// dirtied two more files per log and flush, which a syncfs then had to
// write back. Open rebuilds entries a crash lost (resumeActiveLocked). A
// variable for tests.
var indexWriteBytes int64 = 1 << 20

// flushIndexDueLocked writes the pending index entries if the segment grew
// indexWriteBytes since they were last written.
func (s *segment) flushIndexDueLocked() error {
	if s.size-s.idxWrittenAt < indexWriteBytes {
		return nil
	}
	return s.flushIndexLocked()
}

// flushIndexLocked writes the pending index entries. When the time index
// would end before the offset index, it first gets an entry at the offset
// index's last point (the same timestamp as its last entry), so that both
// files of every write end at the same point: Open then finds a point
// where both are complete and tsBefore is exact, even when the time index
// has not grown for long.
func (s *segment) flushIndexLocked() error {
	s.idxWrittenAt = s.size
	if n := len(s.oiPend); n > 0 {
		o, err := decodeIdxEntry(s.oiPend[n-indexEntrySize:])
		if err != nil {
			return err
		}
		t, ok, err := s.lastTimeEntryLocked()
		if err != nil {
			return err
		}
		if !ok {
			t.A = 1 << 63 // noTimestamp
		}
		if !ok || t.Pos < o.Pos {
			s.tiPend = appendIdxEntry(s.tiPend, idxEntry{A: t.A, B: o.A, Pos: o.Pos})
		}
	}
	if len(s.oiPend) > 0 {
		if _, err := s.oi.WriteAt(s.oiPend, s.oiCount*indexEntrySize); err != nil {
			return err
		}
		s.oiCount += int64(len(s.oiPend) / indexEntrySize)
		s.oiPend = s.oiPend[:0]
	}
	if len(s.tiPend) > 0 {
		if _, err := s.ti.WriteAt(s.tiPend, s.tiCount*indexEntrySize); err != nil {
			return err
		}
		s.tiCount += int64(len(s.tiPend) / indexEntrySize)
		s.tiPend = s.tiPend[:0]
	}
	return nil
}

// syncIndexLocked writes the pending index entries and fsyncs both index
// files.
func (s *segment) syncIndexLocked() error {
	if err := s.flushIndexLocked(); err != nil {
		return err
	}
	if err := s.oi.Sync(); err != nil {
		return err
	}
	return s.ti.Sync()
}

// lastTimeEntryLocked returns the time index's last entry (pending or in
// the file).
func (s *segment) lastTimeEntryLocked() (idxEntry, bool, error) {
	n := s.tiCount + int64(len(s.tiPend)/indexEntrySize)
	if n == 0 {
		return idxEntry{}, false, nil
	}
	e, err := idxAt(s.ti, s.tiCount, s.tiPend, n-1, fileRef{s, 't'})
	return e, err == nil, err
}

// idxAt returns the i-th entry of an index (file entries, then pending).
// The read goes through the segment's scratch buffer.
func idxAt(f File, count int64, pend []byte, i int64, ref fileRef) (idxEntry, error) {
	var raw []byte
	if i < count {
		b := ref.s.scratch[:]
		if err := readFullAt(f, b, i*indexEntrySize); err != nil {
			return idxEntry{}, err
		}
		raw = b
	} else {
		j := (i - count) * indexEntrySize
		raw = pend[j : j+indexEntrySize]
	}
	e, err := decodeIdxEntry(raw)
	if err != nil {
		return e, &CorruptionError{File: ref.String(), Pos: i * indexEntrySize, Reason: err.Error()}
	}
	return e, nil
}

// searchIdx returns the last entry of an index for which le(entry) holds
// (le must be monotonic: true for a prefix), or ok=false.
func searchIdx(f File, count int64, pend []byte, ref fileRef, le func(idxEntry) bool) (idxEntry, bool, error) {
	n := count + int64(len(pend)/indexEntrySize)
	var ferr error
	i := sort.Search(int(n), func(i int) bool {
		if ferr != nil {
			return true
		}
		e, err := idxAt(f, count, pend, int64(i), ref)
		if err != nil {
			ferr = err
			return true
		}
		return !le(e)
	})
	if ferr != nil {
		return idxEntry{}, false, ferr
	}
	if i == 0 {
		return idxEntry{}, false, nil
	}
	e, err := idxAt(f, count, pend, int64(i-1), ref)
	return e, err == nil, err
}

// point is a frame boundary in a segment and the log's state there.
type point struct {
	pos      int64
	index    uint64 // index of the frame at pos
	offset   uint64 // next offset at pos
	tsBefore int64  // max timestamp of the segment's batches before pos
}

func (s *segment) startPoint() point {
	return point{pos: segHeaderSize, index: s.BaseIndex, offset: s.BaseOffset, tsBefore: noTimestamp}
}

// seekIndexLocked returns the last indexed point whose Raft index is <= i.
// withTs fills in tsBefore (a second binary search, in the time index).
func (s *segment) seekIndexLocked(i uint64, withTs bool) (point, error) {
	return s.seekOffIdxLocked(func(e idxEntry) bool { return e.B <= i }, withTs)
}

// seekOffsetLocked returns the last indexed point whose next offset is <=
// off, without tsBefore.
func (s *segment) seekOffsetLocked(off uint64) (point, error) {
	return s.seekOffIdxLocked(func(e idxEntry) bool { return e.A <= off }, false)
}

func (s *segment) seekOffIdxLocked(le func(idxEntry) bool, withTs bool) (point, error) {
	e, ok, err := searchIdx(s.oi, s.oiCount, s.oiPend, fileRef{s, 'o'}, le)
	if err != nil || !ok {
		return s.startPoint(), err
	}
	p := point{pos: int64(e.Pos), index: e.B, offset: e.A, tsBefore: noTimestamp}
	if !withTs {
		return p, nil
	}
	// The time index has an entry at every offset-index point where the
	// max timestamp grew, so the last one at or before pos is exact.
	t, ok, err := searchIdx(s.ti, s.tiCount, s.tiPend, fileRef{s, 't'}, func(t idxEntry) bool { return int64(t.Pos) <= p.pos })
	if err != nil {
		return p, err
	}
	if ok {
		p.tsBefore = int64(t.A)
	}
	return p, nil
}

// seekTimeLocked returns the last time-indexed point whose max timestamp
// before it is < ts (every batch before it is older than ts).
func (s *segment) seekTimeLocked(ts int64) (point, error) {
	t, ok, err := searchIdx(s.ti, s.tiCount, s.tiPend, fileRef{s, 't'}, func(t idxEntry) bool { return int64(t.A) < ts })
	if err != nil || !ok {
		return s.startPoint(), err
	}
	return point{pos: int64(t.Pos), offset: t.B, tsBefore: int64(t.A)}, nil
}

// addIndexLocked records the point p (before writing the frame at p.pos)
// if the interval has passed.
func (s *segment) addIndexLocked(p point, interval int) {
	if p.pos-s.lastIdxPos < int64(interval) {
		return
	}
	s.lastIdxPos = p.pos
	s.oiPend = appendIdxEntry(s.oiPend, idxEntry{A: p.offset, B: p.index, Pos: uint32(p.pos)})
	if p.tsBefore > s.lastIdxTs {
		s.lastIdxTs = p.tsBefore
		s.tiPend = appendIdxEntry(s.tiPend, idxEntry{A: uint64(p.tsBefore), B: p.offset, Pos: uint32(p.pos)})
	}
}

// sealIndexLocked appends the sentinels at the end of the segment.
func (s *segment) sealIndexLocked(end point) {
	s.oiPend = appendIdxEntry(s.oiPend, idxEntry{A: end.offset, B: end.index, Pos: uint32(end.pos)})
	s.tiPend = appendIdxEntry(s.tiPend, idxEntry{A: uint64(end.tsBefore), B: end.offset, Pos: uint32(end.pos)})
}

func removeSegmentFiles(fs FS, path string) error {
	// path is the segment's path without suffix.
	var first error
	for _, suf := range []string{segSuffix, offIndexSuffix, timeIndexSuffix} {
		if err := fs.Remove(path + suf); err != nil && !os.IsNotExist(err) && first == nil {
			first = err
		}
	}
	return first
}

func segPathIn(dir string, baseIndex uint64) string {
	return filepath.Join(dir, segBaseName(baseIndex))
}
