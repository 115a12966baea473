package storage

import (
	"cmp"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Snapshots kept on disk. The latest snapshot (the state file's) is where
// a restart resumes applying: Snapshot returns it, as raft.MemoryStorage
// does. What raft should send a follower behind the first index is
// StartSnapshot, the one at FirstIndex-1: a follower that installs it
// then receives every entry the log still holds, so it serves the same
// records as its leader. The caller takes a snapshot at the last index of
// each segment (SegmentBaseAfter finds them) and retention deletes a
// segment only when there is one: the log always starts right after a
// snapshot. Snapshots below FirstIndex-1, and those neither latest nor at
// a segment's end, are deleted.

// StartSnapshot returns the snapshot at FirstIndex-1 (empty if the log
// starts at 1), or, in a log whose start has no snapshot, the latest. A
// raft.Storage that serves it as Snapshot() sends a follower behind the
// log a snapshot after which it receives every entry still held.
func (l *Log) StartSnapshot() (*raftpb.Snapshot, error) {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	idx := l.firstIndexLocked() - 1
	if idx > 0 && !l.hasSnapLocked(idx) {
		idx = l.mu.st.SnapIndex
	}
	st := l.mu.st
	l.mu.Unlock()
	if idx == 0 {
		return raftpb.EnsureSnapshot(nil), nil
	}
	snap, err := l.readSnap(idx, st)
	if errors.Is(err, fs.ErrNotExist) && idx != st.SnapIndex {
		// Retention deleted it meanwhile: raft asks again.
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return snap, err
}

// Snapshot implements raft.Storage: the latest snapshot created or applied
// (an empty one if none), the state a restart resumes from.
func (l *Log) Snapshot() (*raftpb.Snapshot, error) {
	l.mu.Lock()
	st, closed := l.mu.st, l.mu.closed
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if st.SnapIndex == 0 {
		return raftpb.EnsureSnapshot(nil), nil
	}
	snap, err := l.readSnap(st.SnapIndex, st)
	if err == nil && snap.GetMetadata().GetTerm() != st.SnapTerm {
		err = &CorruptionError{File: filepath.Join(l.dir, snapName(st.SnapIndex)), Reason: "snapshot file does not match the state file"}
	}
	return snap, err
}

// SegmentBaseAfter returns the smallest first index of a segment above
// index, or 0 if none: the entry before it is the last of a segment.
func (l *Log) SegmentBaseAfter(index uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, _ := l.segmentFromLocked(index + 1)
	if k == len(l.mu.segs) {
		return 0
	}
	return l.mu.segs[k].BaseIndex
}

// readSnap reads and checks the snapshot file at index; st gives the conf
// state of a file of the first format, which has none.
func (l *Log) readSnap(index uint64, st *persistedState) (*raftpb.Snapshot, error) {
	path := filepath.Join(l.dir, snapName(index))
	b, err := readWholeFile(l.fs, path)
	if err != nil {
		return nil, err
	}
	idx, term, cs, data, err := decodeSnap(b)
	if err != nil {
		return nil, &CorruptionError{File: path, Reason: err.Error()}
	}
	if idx != index {
		return nil, &CorruptionError{File: path, Reason: "snapshot file holds another index"}
	}
	if cs == nil {
		if index != st.SnapIndex {
			return nil, &CorruptionError{File: path, Reason: "snapshot file without a conf state is not the latest"}
		}
		cs = proto.Clone(&st.SnapConf).(*raftpb.ConfState)
	}
	snap := raftpb.EnsureSnapshot(nil)
	snap.Data = data
	snap.Metadata.Index, snap.Metadata.Term = new(idx), new(term)
	snap.Metadata.ConfState = raftpb.EnsureConfState(cs)
	return snap, nil
}

// hasSnapLocked reports whether a snapshot at index is on disk.
func (l *Log) hasSnapLocked(index uint64) bool {
	_, ok := slices.BinarySearch(l.mu.snaps, index)
	return ok
}

// pruneSnapsLocked deletes the snapshots no longer needed: below
// FirstIndex-1, or neither the latest nor at the last index of a segment.
func (l *Log) pruneSnapsLocked() {
	slices.Sort(l.mu.snaps)
	l.mu.snaps = slices.Compact(l.mu.snaps)
	first := l.firstIndexLocked()
	keep := l.mu.snaps[:0]
	for _, idx := range l.mu.snaps {
		if idx == l.mu.st.SnapIndex || idx+1 >= first && l.isSegmentEndLocked(idx) {
			keep = append(keep, idx)
			continue
		}
		if err := l.fs.Remove(filepath.Join(l.dir, snapName(idx))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.logger.Warn("removing an old snapshot", "index", idx, "err", err)
		}
	}
	l.mu.snaps = keep
}

// isSegmentEndLocked reports whether index+1 is a segment's first index.
func (l *Log) isSegmentEndLocked(index uint64) bool {
	_, ok := l.segmentFromLocked(index + 1)
	return ok
}

// segmentFromLocked returns the position of the first segment whose first
// index is at least base (len(segs) if none), and whether it is base.
func (l *Log) segmentFromLocked(base uint64) (int, bool) {
	return slices.BinarySearchFunc(l.mu.segs, base, func(s *segment, i uint64) int {
		return cmp.Compare(s.BaseIndex, i)
	})
}
