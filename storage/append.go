package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// directWriteMin: frames with at least this much data are written from the
// caller's slice instead of being copied into the write buffer.
const (
	directWriteMin = 64 << 10
	wbufFlush      = 1 << 20
)

var errTermRegression = errors.New("storage: entry term lower than its predecessor's")

// Append writes entries after truncating any suffix they replace.
// ents must be contiguous with non-decreasing terms; ents[0].Index <=
// LastIndex() truncates the log from ents[0].Index first; entries below
// FirstIndex() are ignored (like raft.MemoryStorage). The entries are
// written but not durable until Sync returns. Append copies Data for its
// cache, unless Options.RetainData.
func (l *Log) Append(ents []Entry) error {
	if len(ents) == 0 {
		return nil
	}
	for i := range ents {
		if len(ents[i].Data) > maxFrameBody-bodyHeaderSize {
			return fmt.Errorf("storage: entry %d of %d bytes is too large", ents[i].Index, len(ents[i].Data))
		}
	}
	for i := 1; i < len(ents); i++ {
		if ents[i].Index != ents[i-1].Index+1 {
			return fmt.Errorf("%w: index %d after %d", ErrNotContiguous, ents[i].Index, ents[i-1].Index)
		}
		if ents[i].Term < ents[i-1].Term {
			return errTermRegression
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	first := l.firstIndexLocked()
	if ents[len(ents)-1].Index < first {
		return nil
	}
	if ents[0].Index < first {
		ents = ents[first-ents[0].Index:]
	}
	if ents[0].Index > l.mu.lastIndex+1 {
		return fmt.Errorf("%w: index %d after last %d", ErrNotContiguous, ents[0].Index, l.mu.lastIndex)
	}
	prevTerm, err := l.termLocked(ents[0].Index - 1)
	if err != nil {
		return err
	}
	if ents[0].Term < prevTerm {
		return errTermRegression
	}
	if ents[0].Index <= l.mu.lastIndex {
		if err := l.truncateLocked(ents[0].Index, prevTerm); err != nil {
			return l.failLocked(err)
		}
	}
	if err := l.appendLocked(ents); err != nil {
		return l.failLocked(err)
	}
	return nil
}

func (l *Log) appendLocked(ents []Entry) error {
	a := l.activeLocked()
	p := l.endPointLocked(len(l.mu.segs) - 1)
	wbuf := l.mu.wbuf[:0]
	wpos := a.size
	flush := func() error {
		if len(wbuf) == 0 {
			return nil
		}
		l.reserveLocked(a, wpos+int64(len(wbuf)))
		_, err := a.f.WriteAt(wbuf, wpos)
		wpos += int64(len(wbuf))
		wbuf = wbuf[:0]
		return err
	}
	// commit records what is on disk so far in the active segment.
	commit := func(p point) {
		a.size, a.maxTs = p.pos, p.tsBefore
		l.mu.next = p.offset
	}
	// Entries larger than a quarter of the cache are not cached (copying
	// them would only evict everything else); the cache restarts after them.
	cacheable := func(e *Entry) bool { return int64(len(e.Data)) < l.mu.cache.max/4 }
	// slab is a copy of the cached entries' data, one allocation per call
	// that bytes.Join makes without zeroing it first (for large batches
	// the zeroing cost about as much as the copy).
	var slab []byte
	if l.mu.cache.max > 0 && !l.opts.RetainData {
		parts := make([][]byte, 0, len(ents))
		for i := range ents {
			if cacheable(&ents[i]) && len(ents[i].Data) > 0 {
				parts = append(parts, ents[i].Data)
			}
		}
		slab = bytes.Join(parts, nil)
	}
	defer func() {
		if cap(wbuf) <= 4*wbufFlush {
			l.mu.wbuf = wbuf[:0]
		}
	}()
	now := l.opts.Now()
	for i := range ents {
		e := &ents[i]
		fsize := int64(frameSize(e))
		if p.pos > segHeaderSize && (p.pos+fsize > l.opts.SegmentBytes ||
			(l.opts.SegmentAge > 0 && now.UnixMilli()-a.Created >= l.opts.SegmentAge.Milliseconds())) {
			if err := flush(); err != nil {
				return err
			}
			commit(p)
			if err := l.rollLocked(p); err != nil {
				return err
			}
			a = l.activeLocked()
			p, wpos = a.startPoint(), a.size
			l.mu.lastFrame = 0
		}
		a.addIndexLocked(p, l.opts.IndexIntervalBytes)
		l.mu.appended += uint64(fsize)
		if len(e.Data) >= directWriteMin {
			if err := flush(); err != nil {
				return err
			}
			hdr := appendFrameHeader(wbuf, e)
			l.reserveLocked(a, wpos+fsize)
			if _, err := a.f.WriteAt(hdr, wpos); err != nil {
				return err
			}
			if _, err := a.f.WriteAt(e.Data, wpos+int64(len(hdr))); err != nil {
				return err
			}
			wpos += fsize
		} else {
			wbuf = appendFrame(wbuf, e)
			if len(wbuf) >= wbufFlush {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if l.mu.cache.max > 0 && !cacheable(e) {
			l.mu.cache.reset()
		} else if l.mu.cache.max > 0 {
			var data []byte
			switch {
			case len(e.Data) == 0:
			case l.opts.RetainData:
				data = e.Data[:len(e.Data):len(e.Data)]
			default:
				data, slab = slab[:len(e.Data):len(e.Data)], slab[len(e.Data):]
			}
			l.mu.cache.add(e.Index, cachedEntry{
				e:      newPBEntry(e.Index, e.Term, e.Type, data),
				offset: p.offset,
				size:   pbSize(e.Index, e.Term, e.Type, len(e.Data)),
			})
		}
		m := frameMeta{Index: e.Index, Records: e.Records, MaxTimestamp: e.MaxTimestamp, DataLen: len(e.Data)}
		l.mu.lastFrame = p.pos
		p = advance(p, &m)
		l.mu.lastIndex, l.mu.lastTerm = e.Index, e.Term
	}
	if err := flush(); err != nil {
		return err
	}
	commit(p)
	l.mu.seq++
	return nil
}

// appendFrameHeader appends the frame header and body header of e; the
// CRC covers e.Data, which the caller writes right after.
func appendFrameHeader(dst []byte, e *Entry) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(bodyHeaderSize+len(e.Data)))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, e.Index)
	dst = binary.LittleEndian.AppendUint64(dst, e.Term)
	dst = append(dst, byte(e.Type))
	dst = binary.LittleEndian.AppendUint32(dst, e.Records)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.MaxTimestamp))
	c := crc32.Update(crc(dst[start+frameHeaderSize:]), castagnoli, e.Data)
	binary.LittleEndian.PutUint32(dst[start+4:], c)
	return dst
}

// rollLocked seals the active segment (sentinels, fsync of the segment and
// its indexes) and starts a new one at end.
func (l *Log) rollLocked(end point) error {
	a := l.activeLocked()
	a.sealIndexLocked(end)
	if err := a.flushIndexLocked(); err != nil {
		return err
	}
	// A sealed segment ends at its last frame.
	if err := a.trimLocked(); err != nil {
		return err
	}
	for _, f := range []File{a.f, a.oi, a.ti} {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	s, err := l.createSegmentLocked(segHeader{BaseIndex: end.index, PrevTerm: l.mu.lastTerm, BaseOffset: end.offset})
	if err != nil {
		return err
	}
	a.sealed, a.maxTs, a.maxTsKnown = true, end.tsBefore, true
	l.mu.openSealed++
	l.mu.segs = append(l.mu.segs, s)
	l.evictSealedLocked(nil)
	return nil
}

// truncateLocked removes the entries >= i (first <= i <= last); prevTerm is
// the term of entry i-1.
func (l *Log) truncateLocked(i, prevTerm uint64) error {
	if err := l.activeLocked().flushIndexLocked(); err != nil {
		return err
	}
	// The bytes below the recovery point are about to change.
	if err := l.invalidateRecoveryLocked(); err != nil {
		return err
	}
	// Index entries become durable below (truncateIndexesLocked): the
	// frames they describe must be durable first.
	if err := l.activeLocked().f.Sync(); err != nil {
		return err
	}
	k := l.segmentForIndexLocked(i)
	if k < len(l.mu.segs)-1 {
		// Validate the segment's indexes while its end is still known.
		if _, err := l.ensureOpenLocked(k); err != nil {
			return err
		}
		for _, s := range l.mu.segs[k+1:] {
			l.removeSegmentLocked(s)
		}
		clear(l.mu.segs[k+1:])
		l.mu.segs = l.mu.segs[:k+1]
		// A stale later segment must never come back after a crash.
		if err := l.fs.SyncDir(l.dir); err != nil {
			return err
		}
		s := l.mu.segs[k]
		if s.oi != nil {
			l.mu.openSealed--
		}
		s.sealed = false
	}
	s := l.mu.segs[k]
	if err := s.openIndexesLocked(l.fs, false); err != nil {
		return err
	}
	p, err := s.seekIndexLocked(i, true)
	if err != nil {
		return err
	}
	q, _, found, err := scanTo(s, p, s.size, func(p point, _ *frameMeta) bool { return p.index == i })
	if err != nil {
		return err
	}
	if !found {
		return &CorruptionError{File: s.segPath(), Pos: q.pos, Reason: fmt.Sprintf("entry %d not found", i)}
	}
	if err := s.f.Truncate(q.pos); err != nil {
		return err
	}
	s.alloc, s.zeroed = q.pos, q.pos
	s.size, s.maxTs, s.maxTsKnown = q.pos, q.tsBefore, true
	if err := l.truncateIndexesLocked(s, q.pos); err != nil {
		return err
	}
	l.mu.lastIndex, l.mu.lastTerm, l.mu.next = i-1, prevTerm, q.offset
	l.mu.lastFrame = -1 // unknown until the next append
	if q.pos == segHeaderSize {
		l.mu.lastFrame = 0
	}
	l.mu.cache.truncate(i)
	l.mu.seq++
	return nil
}

// truncateIndexesLocked drops index entries past pos and resets the
// active segment's indexing state.
func (l *Log) truncateIndexesLocked(s *segment, pos int64) error {
	s.lastIdxPos, s.lastIdxTs = segHeaderSize, noTimestamp
	le := func(e idxEntry) bool { return int64(e.Pos) <= pos }
	for _, ix := range []struct {
		f     File
		count *int64
		ref   fileRef
		time  bool
	}{{s.oi, &s.oiCount, fileRef{s, 'o'}, false}, {s.ti, &s.tiCount, fileRef{s, 't'}, true}} {
		n := *ix.count
		var ferr error
		keep := searchN(n, func(j int64) bool {
			e, err := idxAt(ix.f, n, nil, j, ix.ref)
			if err != nil {
				ferr = err
				return false
			}
			return le(e)
		})
		if ferr != nil {
			return ferr
		}
		if keep < n {
			if err := ix.f.Truncate(keep * indexEntrySize); err != nil {
				return err
			}
			// Durably: an entry of the old tail must never come back
			// below a later recovery point.
			if err := ix.f.Sync(); err != nil {
				return err
			}
			*ix.count = keep
		}
		if keep > 0 {
			e, err := idxAt(ix.f, keep, nil, keep-1, ix.ref)
			if err != nil {
				return err
			}
			if ix.time {
				s.lastIdxTs = int64(e.A)
			} else {
				s.lastIdxPos = int64(e.Pos)
			}
		}
	}
	return nil
}

// searchN returns the number of leading j in [0, n) for which ok(j) holds
// (ok must be true for a prefix).
func searchN(n int64, ok func(int64) bool) int64 {
	lo, hi := int64(0), n
	for lo < hi {
		m := lo + (hi-lo)/2
		if ok(m) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
