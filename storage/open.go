package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// recoverLocked is Open's recovery: the directory listing, the state file,
// segment headers, the active segment's scan (from the recovery point) and
// the restart after a snapshot install.
func (l *Log) recoverLocked() error {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	st := &persistedState{}
	segNames := map[string]bool{}
	var bases []uint64
	for _, n := range names {
		switch {
		case n == stateFile:
			b, err := readWholeFile(l.fs, filepath.Join(l.dir, n))
			if err != nil {
				return err
			}
			if st, err = decodeState(b); err != nil {
				return &CorruptionError{File: filepath.Join(l.dir, n), Reason: err.Error()}
			}
		case strings.HasSuffix(n, ".tmp"):
			if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil {
				return err
			}
		default:
			if b, ok := parseSegName(n); ok {
				bases = append(bases, b)
				segNames[segBaseName(b)] = true
			}
		}
	}
	l.mu.st = st
	// Leftovers: snapshots above the latest (written, never recorded),
	// index files without a segment. Other old snapshots go once the
	// segments are known (pruneSnapsLocked).
	for _, n := range names {
		base, _, _ := strings.Cut(n, ".")
		orphan := (strings.HasSuffix(n, offIndexSuffix) || strings.HasSuffix(n, timeIndexSuffix)) && !segNames[base]
		snap, isSnap := parseSnapName(n)
		if isSnap && snap <= st.SnapIndex {
			l.mu.snaps = append(l.mu.snaps, snap)
		}
		if orphan || isSnap && snap > st.SnapIndex {
			if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil {
				return err
			}
		}
	}
	rp, haveRP, err := l.openRecoveryLocked()
	if err != nil {
		return err
	}
	if st.ResetPending {
		return l.resetLogLocked(bases)
	}
	for i, b := range bases {
		s, err := l.openSegmentLocked(b, i == len(bases)-1)
		if err != nil {
			var ce *CorruptionError
			if i == len(bases)-1 && errors.As(err, &ce) {
				// A torn header of the newest segment: it was created but
				// never synced with data in it.
				l.logger.Warn("removing segment with a torn header", "file", ce.File, "reason", ce.Reason)
				if err := removeSegmentFiles(l.fs, segPathIn(l.dir, b)); err != nil {
					return err
				}
				break
			}
			return err
		}
		l.mu.segs = append(l.mu.segs, s)
	}
	if len(l.mu.segs) == 0 || l.mu.segs[0].BaseIndex > st.SnapIndex+1 {
		return l.resetLogLocked(bases)
	}
	if a := l.activeLocked(); a.segFiles == nil || a.f == nil { // the newest one was removed above
		f, err := l.fs.OpenFile(a.segPath(), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		a.files().f, a.sealed = f, false
	}
	a := l.activeLocked()
	from, term, resumed := a.startPoint(), a.PrevTerm, false
	if haveRP {
		p, t, ok, err := l.resumeActiveLocked(rp)
		if err != nil {
			return err
		}
		if ok {
			from, term, resumed = p, t, true
		}
	}
	if !resumed && haveRP {
		if err := l.invalidateRecoveryLocked(); err != nil {
			return err
		}
	}
	durable := int64(0)
	if resumed {
		durable = int64(rp.Pos)
	}
	if err := l.recoverActiveLocked(from, term, resumed, durable); err != nil {
		return err
	}
	if l.mu.lastIndex < st.SnapIndex {
		return l.resetLogLocked(bases)
	}
	l.mu.start = max(st.StartOffset, l.mu.segs[0].BaseOffset)
	return nil
}

// openSegmentLocked reads a segment's header; it keeps the file open only
// for the active segment.
func (l *Log) openSegmentLocked(base uint64, active bool) (*segment, error) {
	s := &segment{dir: &l.dir, segHeader: segHeader{BaseIndex: base}, sealed: !active, maxTs: noTimestamp}
	f, err := l.fs.OpenFile(s.segPath(), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err == nil {
		hdr := make([]byte, segHeaderSize)
		if err = readFullAt(f, hdr, 0); err != nil {
			err = &CorruptionError{File: s.segPath(), Reason: "short segment header"}
		} else if s.segHeader, err = decodeSegHeader(hdr); err != nil {
			err = &CorruptionError{File: s.segPath(), Reason: err.Error()}
		} else if s.BaseIndex != base {
			err = &CorruptionError{File: s.segPath(), Reason: fmt.Sprintf("header base index %d does not match the name", s.BaseIndex)}
		}
	}
	if err != nil || !active {
		f.Close()
		s.size = size
		return s, err
	}
	s.files().f, s.size = f, size
	return s, nil
}

// recoverActiveLocked scans the active segment from p (its start, or a
// recovery point whose indexes resumeActiveLocked kept), truncates it at
// the first torn or corrupt frame and indexes what it scanned. Frames
// below durable were made durable before the recovery point was written;
// a truncation below it invalidates the point.
func (l *Log) recoverActiveLocked(p point, term uint64, resumed bool, durable int64) error {
	a := l.activeLocked()
	if !resumed {
		if err := a.openIndexesLocked(l.fs, true); err != nil {
			return err
		}
		a.idx, a.oiCount, a.tiCount = indexOK, 0, 0
		a.lastIdxPos, a.lastIdxTs = segHeaderSize, noTimestamp
		l.mu.lastFrame = 0
	}
	r := newFrameReader(a.f, fileRef{a, 'l'}, p.pos, a.size)
	defer r.release()
	for {
		m, _, _, done, err := r.next()
		if done {
			break
		}
		var ce *CorruptionError
		if err != nil && !errors.As(err, &ce) {
			return err
		}
		if err == nil && (m.Index != p.index || m.Term < term) {
			err = &CorruptionError{File: a.segPath(), Pos: p.pos, Reason: "frame out of sequence"}
		}
		if err != nil {
			hdr := make([]byte, frameHeaderSize)
			if readFullAt(a.f, hdr, p.pos) == nil && zeroFrameHeader(hdr) {
				// The zeros of preallocated space (or a hole a crash left).
				l.logger.Debug("end of the frames before zeros; truncating", "file", a.segPath(), "pos", p.pos)
			} else {
				l.logger.Warn("truncating the log at a torn or corrupt frame", "file", a.segPath(), "pos", p.pos, "err", err)
			}
			if err := a.f.Truncate(p.pos); err != nil {
				return err
			}
			if err := a.f.Sync(); err != nil {
				return err
			}
			if p.pos < durable {
				if err := l.invalidateRecoveryLocked(); err != nil {
					return err
				}
			}
			break
		}
		a.addIndexLocked(p, l.opts.IndexIntervalBytes)
		l.mu.lastFrame = p.pos
		p = advance(p, &m)
		term = m.Term
	}
	a.size, a.maxTs, a.maxTsKnown = p.pos, p.tsBefore, true
	if err := a.flushIndexLocked(); err != nil {
		return err
	}
	if !resumed {
		// The rebuilt indexes replace durable ones that may describe
		// bytes the crash lost.
		for _, f := range []File{a.oi, a.ti} {
			if err := f.Sync(); err != nil {
				return err
			}
		}
	}
	l.mu.lastIndex, l.mu.lastTerm, l.mu.next = p.index-1, term, p.offset
	return nil
}

// resetLogLocked drops every segment and starts an empty log after the
// snapshot. It completes a snapshot install interrupted by a crash.
func (l *Log) resetLogLocked(bases []uint64) error {
	st := l.mu.st
	if err := l.invalidateRecoveryLocked(); err != nil {
		return err
	}
	for _, s := range l.mu.segs {
		l.removeSegmentLocked(s)
	}
	l.mu.segs = nil
	for _, b := range bases {
		if err := removeSegmentFiles(l.fs, segPathIn(l.dir, b)); err != nil {
			return err
		}
	}
	s, err := l.createSegmentLocked(segHeader{BaseIndex: st.SnapIndex + 1, PrevTerm: st.SnapTerm, BaseOffset: st.SnapNext})
	if err != nil {
		return err
	}
	l.mu.segs = []*segment{s}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	l.mu.dirDirty = false
	l.mu.cache.reset()
	l.mu.lastIndex, l.mu.lastTerm, l.mu.next = st.SnapIndex, st.SnapTerm, st.SnapNext
	l.mu.lastFrame = 0
	l.mu.start = max(st.StartOffset, st.SnapNext)
	if st.ResetPending {
		next := l.cloneStateLocked()
		next.ResetPending = false
		if err := l.saveStateLocked(next); err != nil {
			return err
		}
	}
	return nil
}
