package storage

import (
	"fmt"

	"go.etcd.io/raft/v3"
)

// StartOffset is the first readable offset.
func (l *Log) StartOffset() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.start
}

// NextOffset is the offset the next record batch will take.
func (l *Log) NextOffset() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.next
}

// OffsetAt returns the first offset of the entry at index (the next offset
// before it). index may be LastIndex()+1.
func (l *Log) OffsetAt(index uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.offsetAtLocked(index)
}

func (l *Log) offsetAtLocked(i uint64) (uint64, error) {
	switch {
	case i < l.firstIndexLocked():
		return 0, fmt.Errorf("storage: offset of index %d: %w", i, raft.ErrCompacted)
	case i > l.mu.lastIndex+1:
		return 0, fmt.Errorf("%w: index %d beyond last %d", ErrOutOfBounds, i, l.mu.lastIndex)
	case i == l.mu.lastIndex+1:
		return l.mu.next, nil
	}
	if ce, ok := l.mu.cache.get(i); ok {
		return ce.offset, nil
	}
	_, p, err := l.findLocked(i)
	return p.offset, err
}

// Read returns the stored batches covering [offset, maxOffset): at least
// one batch if any, more while their data fits in maxBytes. The first
// batch may start before offset (batches are never split). offset below
// StartOffset or above NextOffset returns *OffsetOutOfRangeError.
//
// Batch.Data aliases one buffer per segment read: the bytes are copied
// once, from the file. The read holds a reference on the segment, so a
// concurrent roll or retention does not disturb it.
func (l *Log) Read(offset, maxOffset uint64, maxBytes int) ([]Batch, error) {
	return l.ReadInto(nil, nil, offset, maxOffset, maxBytes)
}

// ReadInto is Read into caller-supplied memory: the batches are appended
// to dst[:0] and their Data is read into buf, from its start, as long as
// it has room (a read that does not fit allocates). The bytes are still
// copied once, from the file, and a segment roll, truncation or retention
// during the read does not disturb it. The result aliases buf: the caller
// must not reuse buf while it uses the batches. A buf a little larger
// than maxBytes (room for frame headers and small control entries)
// usually serves a whole read without allocating.
func (l *Log) ReadInto(dst []Batch, buf []byte, offset, maxOffset uint64, maxBytes int) ([]Batch, error) {
	out := dst[:0]
	scratch := buf[:0]
	budget := maxBytes
	for {
		l.mu.Lock()
		if l.mu.closed {
			l.mu.Unlock()
			return nil, ErrClosed
		}
		if offset < l.mu.start || offset > l.mu.next {
			err := &OffsetOutOfRangeError{Offset: offset, Start: l.mu.start, End: l.mu.next}
			l.mu.Unlock()
			if len(out) > 0 { // retention overtook a multi-segment read
				return out, nil
			}
			return nil, err
		}
		limit := min(maxOffset, l.mu.next)
		if offset >= limit || (len(out) > 0 && budget <= 0) {
			l.mu.Unlock()
			return out, nil
		}
		k := l.segmentForOffsetLocked(offset)
		s, err := l.ensureOpenLocked(k)
		var q point
		var m frameMeta
		var found bool
		if err == nil {
			var p point
			if p, err = s.seekOffsetLocked(offset); err == nil {
				q, m, found, err = scanTo(s, p, s.size, func(p point, m *frameMeta) bool {
					return m.Records > 0 && p.offset+uint64(m.Records) > offset
				})
			}
		}
		if err != nil {
			l.mu.Unlock()
			return nil, err
		}
		if !found {
			// offset is the end of this segment: continue in the next one.
			if k == len(l.mu.segs)-1 || l.mu.segs[k+1].BaseOffset != offset {
				l.mu.Unlock()
				return out, fmt.Errorf("storage: offset %d not found in %s", offset, s.segPath())
			}
			l.mu.Unlock()
			offset = q.offset
			continue
		}
		f, end := l.acquireLocked(s), s.size
		l.mu.Unlock()

		n0 := len(out)
		var next uint64
		var done bool
		out, next, done, err = readBatches(out, &scratch, f, s.segPath(), q.pos, end, q.offset, limit, budget, n0 == 0, &m)
		l.release(s)
		for _, b := range out[n0:] {
			budget -= len(b.Data)
		}
		if err != nil {
			if len(out) > 0 {
				return out, nil // the next read reports it
			}
			return nil, err
		}
		if done || next == offset {
			return out, nil
		}
		offset = next
	}
}

// readBatches reads the frames from pos (a frame boundary whose next offset
// is off), a budget's worth at a time, and returns the record batches below
// limit whose data fits in budget (the first always, if mustOne). It
// returns the next offset after what it returned and whether the read is
// complete (limit or budget reached) rather than at the segment's end.
// first, if known, is the metadata of the frame at pos.
//
// The batches are appended to out; their data is read into the free
// capacity of *scratch when it fits (*scratch grows over what it used).
func readBatches(out []Batch, scratch *[]byte, f File, path string, pos, end int64, off, limit uint64, budget int, mustOne bool, first *frameMeta) (_ []Batch, next uint64, done bool, err error) {
	n0 := len(out)
	var hdr [frameOverhead]byte
	for pos < end {
		var m frameMeta
		if first != nil {
			m, first = *first, nil
		} else {
			if end-pos < frameOverhead {
				return out, off, true, &CorruptionError{File: path, Pos: pos, Reason: errShortFrame.Error()}
			}
			if err := readFullAt(f, hdr[:], pos); err != nil {
				return out, off, true, err
			}
			if m, err = decodeFrameMeta(hdr[:]); err != nil {
				return out, off, true, &CorruptionError{File: path, Pos: pos, Reason: err.Error()}
			}
		}
		if m.Records > 0 && (off >= limit || (m.DataLen > budget && !(mustOne && len(out) == n0))) {
			return out, off, true, nil // do not read a frame that will not be returned
		}
		want := max(int64(max(budget, 0))+frameOverhead, m.frameSize())
		want = min(want, end-pos)
		var buf []byte
		fromScratch := false
		if s := *scratch; int64(cap(s)-len(s)) >= want {
			buf = s[len(s) : len(s)+int(want)]
			*scratch = s[:len(s)+int(want)]
			fromScratch = true
		} else {
			buf = make([]byte, want)
		}
		if err := readFullAt(f, buf, pos); err != nil {
			return out, off, true, err
		}
		i := 0
		for i+frameHeaderSize <= len(buf) {
			size, err := frameLen(buf[i:])
			if err != nil {
				return out, off, true, &CorruptionError{File: path, Pos: pos + int64(i), Reason: err.Error()}
			}
			if i+size > len(buf) {
				break
			}
			m, data, _, err := decodeFrame(buf[i:])
			if err != nil {
				return out, off, true, &CorruptionError{File: path, Pos: pos + int64(i), Reason: err.Error()}
			}
			if m.Records > 0 {
				if off >= limit {
					return out, off, true, nil
				}
				if len(data) > budget && !(mustOne && len(out) == n0) {
					return out, off, true, nil
				}
				budget -= len(data)
				out = append(out, Batch{BaseOffset: off, Records: m.Records, Index: m.Index, Term: m.Term, MaxTimestamp: m.MaxTimestamp, Data: data})
				off += uint64(m.Records)
			}
			i += size
		}
		if fromScratch { // a partial frame at the end is read again: give its room back
			*scratch = (*scratch)[:len(*scratch)-(len(buf)-i)]
		}
		pos += int64(i)
	}
	return out, off, false, nil
}

// OffsetForTime returns the base offset of the first batch with
// MaxTimestamp >= ts (at least the start offset); ok is false if there is
// none.
func (l *Log) OffsetForTime(ts int64) (offset uint64, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, false, ErrClosed
	}
	for k := range l.mu.segs {
		maxTs, err := l.segMaxTsLocked(k)
		if err != nil {
			return 0, false, err
		}
		if maxTs < ts {
			continue
		}
		s, err := l.ensureOpenLocked(k)
		if err != nil {
			return 0, false, err
		}
		p, err := s.seekTimeLocked(ts)
		if err != nil {
			return 0, false, err
		}
		q, _, found, err := scanTo(s, p, s.size, func(_ point, m *frameMeta) bool {
			return m.Records > 0 && m.MaxTimestamp >= ts
		})
		if err != nil {
			return 0, false, err
		}
		if found {
			return max(q.offset, l.mu.start), true, nil
		}
	}
	return 0, false, nil
}

// segMaxTsLocked returns the largest batch timestamp of segment k.
func (l *Log) segMaxTsLocked(k int) (int64, error) {
	s := l.mu.segs[k]
	if !s.maxTsKnown {
		if _, err := l.ensureOpenLocked(k); err != nil {
			return 0, err
		}
		if !s.maxTsKnown { // damaged segment: scan what is readable
			s.maxTs, s.maxTsKnown = noTimestamp, true
			_, _, _, err := scanTo(s, s.startPoint(), s.size, func(_ point, m *frameMeta) bool {
				if m.Records > 0 && m.MaxTimestamp > s.maxTs {
					s.maxTs = m.MaxTimestamp
				}
				return false
			})
			if err != nil {
				l.logger.Warn("reading timestamps of a damaged segment", "file", s.segPath(), "err", err)
			}
		}
	}
	return s.maxTs, nil
}
