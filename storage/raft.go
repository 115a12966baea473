package storage

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var _ raft.Storage = (*Log)(nil)

// InitialState implements raft.Storage: the saved HardState (nil if none
// was saved) and ConfState.
func (l *Log) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, nil, ErrClosed
	}
	var hs *raftpb.HardState
	if l.mu.st.HasHardState {
		hs = proto.Clone(&l.mu.st.HardState).(*raftpb.HardState)
	}
	return hs, raftpb.EnsureConfState(proto.Clone(&l.mu.st.ConfState).(*raftpb.ConfState)), nil
}

// Entries implements raft.Storage. Recent entries come from the cache;
// older ones are read from the segment files in one read per segment. The
// result allocates in proportion to its own size only.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	if lo < l.firstIndexLocked() {
		return nil, raft.ErrCompacted
	}
	if hi > l.mu.lastIndex+1 {
		return nil, fmt.Errorf("%w: entries hi %d beyond last index %d", ErrOutOfBounds, hi, l.mu.lastIndex)
	}
	if l.mu.lastIndex < l.firstIndexLocked() {
		return nil, raft.ErrUnavailable
	}
	if lo >= hi {
		return []*raftpb.Entry{}, nil
	}
	c := &l.mu.cache
	n := hi - lo
	if lo >= c.lo && len(c.ents) > 0 {
		n = min(n, c.hi()-lo)
	}
	out := make([]*raftpb.Entry, 0, min(n, 1024))
	var size uint64
	full := func(s uint64) bool {
		size += s
		return len(out) > 0 && size > maxSize
	}
	i := lo
	if len(c.ents) == 0 || lo < c.lo {
		end := hi
		if len(c.ents) > 0 && c.lo < end {
			end = c.lo
		}
		var err error
		out, size, i, err = l.readEntriesLocked(out, lo, end, maxSize)
		if err != nil {
			return nil, err
		}
		if i < end {
			return out, nil
		}
	}
	for ; i < hi; i++ {
		ce, ok := c.get(i)
		if !ok {
			return nil, fmt.Errorf("storage: entry %d missing from the cache", i)
		}
		if full(ce.size) {
			break
		}
		out = append(out, ce.e)
	}
	return out, nil
}

// readEntriesLocked appends entries [lo, hi) read from the segments while
// the total size stays within maxSize (at least one entry overall). It
// returns the next index not read.
func (l *Log) readEntriesLocked(out []*raftpb.Entry, lo, hi, maxSize uint64) ([]*raftpb.Entry, uint64, uint64, error) {
	var size uint64
	i := lo
	for i < hi {
		k := l.segmentForIndexLocked(i)
		s, err := l.ensureOpenLocked(k)
		if err != nil {
			return nil, 0, 0, err
		}
		p, err := s.seekIndexLocked(i, false)
		if err != nil {
			return nil, 0, 0, err
		}
		start, _, found, err := scanTo(s, p, s.size, func(p point, _ *frameMeta) bool { return p.index == i })
		if err != nil {
			return nil, 0, 0, err
		}
		if !found {
			return nil, 0, 0, &CorruptionError{File: s.segPath(), Pos: start.pos, Reason: fmt.Sprintf("entry %d not found", i)}
		}
		// Find the span of frames to read.
		stopped := false
		endp, _, _, err := scanTo(s, start, s.size, func(p point, m *frameMeta) bool {
			if p.index >= hi {
				return true
			}
			size += pbSize(m.Index, m.Term, m.Type, m.DataLen)
			if (len(out) > 0 || p.index > lo) && size > maxSize {
				stopped = true
				return true
			}
			return false
		})
		if err != nil {
			return nil, 0, 0, err
		}
		if endp.pos > start.pos {
			buf := make([]byte, endp.pos-start.pos)
			if err := readFullAt(s.f, buf, start.pos); err != nil {
				return nil, 0, 0, err
			}
			for pos := 0; pos < len(buf); {
				m, data, n, err := decodeFrame(buf[pos:])
				if err != nil {
					return nil, 0, 0, &CorruptionError{File: s.segPath(), Pos: start.pos + int64(pos), Reason: err.Error()}
				}
				if m.Index != i {
					return nil, 0, 0, &CorruptionError{File: s.segPath(), Pos: start.pos + int64(pos), Reason: "frame out of sequence"}
				}
				if len(data) == 0 {
					data = nil
				}
				out = append(out, newPBEntry(m.Index, m.Term, m.Type, data))
				pos += n
				i++
			}
		}
		if stopped {
			break
		}
	}
	return out, size, i, nil
}

// Term implements raft.Storage; it answers for FirstIndex()-1 too.
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.termLocked(i)
}

func (l *Log) termLocked(i uint64) (uint64, error) {
	first := l.firstIndexLocked()
	switch {
	case i+1 < first:
		return 0, raft.ErrCompacted
	case i > l.mu.lastIndex:
		return 0, raft.ErrUnavailable
	case i == l.mu.lastIndex:
		return l.mu.lastTerm, nil
	case i+1 == first:
		return l.mu.segs[0].PrevTerm, nil
	}
	if ce, ok := l.mu.cache.get(i); ok {
		return ce.e.GetTerm(), nil
	}
	k := l.segmentForIndexLocked(i)
	if s := l.mu.segs[k]; s.BaseIndex == i+1 {
		return s.PrevTerm, nil
	}
	m, _, err := l.findLocked(i)
	return m.Term, err
}

// findLocked returns the frame of entry i and the point before it.
func (l *Log) findLocked(i uint64) (frameMeta, point, error) {
	k := l.segmentForIndexLocked(i)
	s, err := l.ensureOpenLocked(k)
	if err != nil {
		return frameMeta{}, point{}, err
	}
	p, err := s.seekIndexLocked(i, false)
	if err != nil {
		return frameMeta{}, point{}, err
	}
	q, m, found, err := scanTo(s, p, s.size, func(p point, _ *frameMeta) bool { return p.index == i })
	if err == nil && !found {
		err = &CorruptionError{File: s.segPath(), Pos: q.pos, Reason: fmt.Sprintf("entry %d not found", i)}
	}
	return m, q, err
}

// LastIndex implements raft.Storage.
func (l *Log) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.mu.lastIndex, nil
}

// FirstIndex implements raft.Storage.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	return l.firstIndexLocked(), nil
}

// SaveState durably replaces the hard state and/or conf state (nil =
// unchanged) with an atomic file replace: two fsyncs (file and directory),
// so callers should save when the state changed, not on every Ready. An
// unchanged hard state alone writes nothing.
func (l *Log) SaveState(hs *raftpb.HardState, cs *raftpb.ConfState) error {
	if hs == nil && cs == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	cur := l.mu.st
	if cs == nil && cur.HasHardState && hs.GetTerm() == cur.HardState.GetTerm() &&
		hs.GetVote() == cur.HardState.GetVote() && hs.GetCommit() == cur.HardState.GetCommit() {
		return nil // unchanged: no file write
	}
	next := l.cloneStateLocked()
	if hs != nil {
		next.HasHardState = true
		next.HardState = raftpb.HardState{Term: new(hs.GetTerm()), Vote: new(hs.GetVote()), Commit: new(hs.GetCommit())}
	}
	if cs != nil {
		proto.Reset(&next.ConfState)
		proto.Merge(&next.ConfState, cs)
	}
	return l.saveStateLocked(next)
}

func (l *Log) cloneStateLocked() *persistedState {
	st := l.mu.st
	next := &persistedState{
		HasHardState: st.HasHardState, ResetPending: st.ResetPending, StartOffset: st.StartOffset,
		SnapIndex: st.SnapIndex, SnapTerm: st.SnapTerm, SnapNext: st.SnapNext,
	}
	proto.Merge(&next.HardState, &st.HardState)
	proto.Merge(&next.ConfState, &st.ConfState)
	proto.Merge(&next.SnapConf, &st.SnapConf)
	return next
}

// saveStateLocked writes the state file; a failure fails the log.
func (l *Log) saveStateLocked(next *persistedState) error {
	b, err := next.encode()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.fs, l.dir, stateFile, b); err != nil {
		return l.failLocked(err)
	}
	l.mu.st = next
	return nil
}

// CreateSnapshot durably records a snapshot at index (<= LastIndex()): the
// latest one, which Snapshot returns; cs nil keeps the previous
// snapshot's conf state. It does not remove entries. A snapshot at the
// last index of a segment stays while that segment's successor is the
// first one: retention deletes a segment only when there is a snapshot at
// its last index, and StartSnapshot returns the one before the first
// index.
func (l *Log) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if index <= l.mu.st.SnapIndex {
		return raft.ErrSnapOutOfDate
	}
	if index > l.mu.lastIndex {
		return fmt.Errorf("%w: snapshot %d beyond last index %d", ErrOutOfBounds, index, l.mu.lastIndex)
	}
	term, err := l.termLocked(index)
	if err != nil {
		return err
	}
	nextOff, err := l.offsetAtLocked(index + 1)
	if err != nil {
		return err
	}
	keepConf := cs == nil
	if keepConf {
		cs = &l.mu.st.SnapConf
	}
	b, err := encodeSnap(index, term, cs, data)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.fs, l.dir, snapName(index), b); err != nil {
		return l.failLocked(err)
	}
	l.mu.snaps = append(l.mu.snaps, index)
	next := l.cloneStateLocked()
	next.SnapIndex, next.SnapTerm, next.SnapNext = index, term, nextOff
	if !keepConf {
		proto.Reset(&next.SnapConf)
		proto.Merge(&next.SnapConf, cs)
		proto.Reset(&next.ConfState)
		proto.Merge(&next.ConfState, cs)
	}
	if err := l.saveStateLocked(next); err != nil {
		return err
	}
	l.pruneSnapsLocked()
	return nil
}

// ApplySnapshot installs a snapshot received from the leader: it drops the
// whole log; the next entry is snap.Index+1 and takes offset nextOffset,
// which also becomes the log start offset. Crash safe: the state file
// records the pending reset until the new empty log is durable.
func (l *Log) ApplySnapshot(snap *raftpb.Snapshot, nextOffset uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	md := snap.GetMetadata()
	index, term := md.GetIndex(), md.GetTerm()
	if l.mu.st.SnapIndex != 0 && l.mu.st.SnapIndex >= index {
		return raft.ErrSnapOutOfDate
	}
	b, err := encodeSnap(index, term, md.GetConfState(), snap.GetData())
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.fs, l.dir, snapName(index), b); err != nil {
		return l.failLocked(err)
	}
	l.mu.snaps = append(l.mu.snaps, index)
	next := l.cloneStateLocked()
	next.SnapIndex, next.SnapTerm, next.SnapNext = index, term, nextOffset
	next.StartOffset, next.ResetPending = nextOffset, true
	proto.Reset(&next.SnapConf)
	proto.Reset(&next.ConfState)
	if cs := md.GetConfState(); cs != nil {
		proto.Merge(&next.SnapConf, cs)
		proto.Merge(&next.ConfState, cs)
	}
	if err := l.saveStateLocked(next); err != nil {
		return err
	}
	if err := l.resetLogLocked(nil); err != nil {
		return l.failLocked(err)
	}
	l.mu.syncedSeq = l.mu.seq
	l.pruneSnapsLocked()
	return nil
}
