package storage

import (
	"errors"
	"fmt"
	"os"
)

// checkIndexLocked validates a sealed segment's index files the first time
// the segment is used after open, and rebuilds them when missing or
// damaged. Validation streams the files; nothing stays in memory.
func (l *Log) checkIndexLocked(k int) error {
	s := l.mu.segs[k]
	end := l.endPointLocked(k)
	err := l.validateIndexesLocked(s, end)
	if err == nil {
		s.idx = indexOK
		return nil
	}
	l.logger.Warn("rebuilding segment indexes", "file", s.segPath(), "reason", err)
	if err := l.rebuildIndexesLocked(s, end); err != nil {
		return err
	}
	s.idx = indexOK
	return nil
}

var errIndexDamaged = errors.New("index damaged")

func (l *Log) validateIndexesLocked(s *segment, end point) error {
	var last [2]idxEntry
	for i, ref := range []fileRef{{s, 'o'}, {s, 't'}} {
		path := ref.String()
		f, err := l.fs.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		n, err := validateIndexFile(f, path, s.size, i == 1)
		if err == nil && n == 0 {
			err = fmt.Errorf("%w: %s has no sentinel", errIndexDamaged, path)
		}
		if err == nil {
			last[i], err = idxAt(f, n, nil, n-1, ref)
		}
		f.Close()
		if err != nil {
			return err
		}
		if i == 0 {
			s.oiCount = n
		} else {
			s.tiCount = n
		}
	}
	o, t := last[0], last[1]
	if int64(o.Pos) != end.pos || o.A != end.offset || o.B != end.index || int64(t.Pos) != end.pos || t.B != end.offset {
		return fmt.Errorf("%w: sentinel does not match the segment's end", errIndexDamaged)
	}
	s.maxTs, s.maxTsKnown = int64(t.A), true
	return nil
}

// validateIndexFile checks every entry of an index file (CRC, ascending
// positions within the segment, ascending keys) and returns the count.
func validateIndexFile(f File, path string, segSize int64, timeIndex bool) (int64, error) {
	size, err := f.Size()
	if err != nil {
		return 0, err
	}
	if size%indexEntrySize != 0 {
		return 0, fmt.Errorf("%w: %s size %d", errIndexDamaged, path, size)
	}
	n := size / indexEntrySize
	buf := make([]byte, 4096*indexEntrySize/16)
	var prev idxEntry
	for i := int64(0); i < n; {
		c := min(int64(len(buf)/indexEntrySize), n-i)
		if err := readFullAt(f, buf[:c*indexEntrySize], i*indexEntrySize); err != nil {
			return 0, err
		}
		for j := int64(0); j < c; j++ {
			e, err := decodeIdxEntry(buf[j*indexEntrySize:])
			if err != nil {
				return 0, &CorruptionError{File: path, Pos: (i + j) * indexEntrySize, Reason: err.Error()}
			}
			if err := checkIdxOrder(prev, e, i+j == 0, segSize, timeIndex); err != nil {
				return 0, &CorruptionError{File: path, Pos: (i + j) * indexEntrySize, Reason: err.Error()}
			}
			prev = e
		}
		i += c
	}
	return n, nil
}

func checkIdxOrder(prev, e idxEntry, first bool, segSize int64, timeIndex bool) error {
	if int64(e.Pos) < segHeaderSize || int64(e.Pos) > segSize {
		return errors.New("position outside the segment")
	}
	if first {
		return nil
	}
	if e.Pos < prev.Pos || e.B < prev.B || (timeIndex && int64(e.A) < int64(prev.A)) || (!timeIndex && e.A < prev.A) {
		return errors.New("entries out of order")
	}
	return nil
}

// rebuildIndexesLocked scans a sealed segment and writes its index files
// anew. A corrupt frame stops the index there; reads reaching it fail.
func (l *Log) rebuildIndexesLocked(s *segment, end point) error {
	if s.oi != nil || s.ti != nil {
		s.oi.Close()
		s.ti.Close()
		s.oi, s.ti = nil, nil
	}
	if err := s.openIndexesLocked(l.fs, true); err != nil {
		return err
	}
	defer func() {
		s.oi.Close()
		s.ti.Close()
		s.oi, s.ti = nil, nil
	}()
	s.oiCount, s.tiCount, s.oiPend, s.tiPend = 0, 0, nil, nil
	s.lastIdxPos, s.lastIdxTs = segHeaderSize, noTimestamp
	p := s.startPoint()
	r := newFrameReader(s.f, fileRef{s, 'l'}, p.pos, s.size)
	defer r.release()
	var scanErr error
	for {
		m, _, _, done, err := r.next()
		if done {
			break
		}
		if err == nil && m.Index != p.index {
			err = &CorruptionError{File: s.segPath(), Pos: p.pos, Reason: "frame out of sequence"}
		}
		if err != nil {
			scanErr = err
			break
		}
		s.addIndexLocked(p, l.opts.IndexIntervalBytes)
		p = advance(p, &m)
	}
	if scanErr == nil && (p.index != end.index || p.offset != end.offset) {
		scanErr = &CorruptionError{File: s.segPath(), Pos: p.pos, Reason: "segment does not end where the next one starts"}
	}
	if scanErr != nil {
		var ce *CorruptionError
		if !errors.As(scanErr, &ce) {
			return scanErr
		}
		l.logger.Error("corrupt frame in a sealed segment; it will not be served", "file", ce.File, "pos", ce.Pos, "reason", ce.Reason)
	} else {
		s.sealIndexLocked(p)
		s.maxTs, s.maxTsKnown = p.tsBefore, true
	}
	if err := s.flushIndexLocked(); err != nil {
		return err
	}
	if err := s.oi.Sync(); err != nil {
		return err
	}
	return s.ti.Sync()
}
