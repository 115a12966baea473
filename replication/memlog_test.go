package replication

import (
	"errors"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/storage"
)

// memDisk keeps memLogs by directory so a host can be closed and reopened
// in a test without the file-based storage.
type memDisk struct {
	mu   sync.Mutex
	logs map[string]*memLog
}

func newMemDisk() *memDisk { return &memDisk{logs: map[string]*memLog{}} }

func (d *memDisk) open(dir string, _ storage.Options) (logStore, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.logs[dir]
	if l == nil {
		l = &memLog{first: 1, cs: &raftpb.ConfState{}}
		d.logs[dir] = l
	}
	l.mu.Lock()
	l.closed = false
	l.mu.Unlock()
	return l, nil
}

// memLog is an in-memory logStore with the storage contract's semantics.
type memLog struct {
	mu         sync.Mutex
	closed     bool
	first      uint64 // index of ents[0]
	ents       []storage.Entry
	offs       []uint64
	snapOffset uint64 // next offset at the snapshot / first entry
	start      uint64
	snap       *raftpb.Snapshot
	hs         *raftpb.HardState
	cs         *raftpb.ConfState
	syncHook   func()
}

func (l *memLog) last() uint64 { return l.first + uint64(len(l.ents)) - 1 }

func (l *memLog) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var hs *raftpb.HardState
	if l.hs != nil {
		hs = proto.Clone(l.hs).(*raftpb.HardState)
	}
	return hs, proto.Clone(l.cs).(*raftpb.ConfState), nil
}

func (l *memLog) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lo < l.first {
		return nil, raft.ErrCompacted
	}
	if hi > l.last()+1 {
		return nil, raft.ErrUnavailable
	}
	var out []*raftpb.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e := l.ents[i-l.first]
		size += uint64(len(e.Data))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, &raftpb.Entry{Index: new(e.Index), Term: new(e.Term), Type: e.Type.Enum(), Data: e.Data})
	}
	return out, nil
}

func (l *memLog) Term(i uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i == l.first-1 {
		if l.snap != nil && l.snap.GetMetadata().GetIndex() == i {
			return l.snap.GetMetadata().GetTerm(), nil
		}
		if i == 0 {
			return 0, nil
		}
	}
	if i < l.first {
		return 0, raft.ErrCompacted
	}
	if i > l.last() {
		return 0, raft.ErrUnavailable
	}
	return l.ents[i-l.first].Term, nil
}

func (l *memLog) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last(), nil
}

func (l *memLog) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first, nil
}

func (l *memLog) Snapshot() (*raftpb.Snapshot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.snap == nil {
		return &raftpb.Snapshot{}, nil
	}
	return l.snap, nil
}

// StartSnapshot: retention here deletes up to the snapshot, so the latest
// is the one before the first index.
func (l *memLog) StartSnapshot() (*raftpb.Snapshot, error) { return l.Snapshot() }

// SegmentBaseAfter: a memLog has no segments.
func (l *memLog) SegmentBaseAfter(uint64) uint64 { return 0 }

func (l *memLog) offsetAtLocked(index uint64) uint64 {
	if len(l.ents) == 0 || index <= l.first {
		return l.snapOffset
	}
	if index > l.last() {
		i := len(l.ents) - 1
		return l.offs[i] + uint64(l.ents[i].Records)
	}
	return l.offs[index-l.first]
}

func (l *memLog) Append(ents []storage.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return storage.ErrClosed
	}
	idx := ents[0].Index
	if idx > l.last()+1 || idx < l.first {
		return storage.ErrNotContiguous
	}
	n := idx - l.first
	l.ents, l.offs = l.ents[:n], l.offs[:n]
	for _, e := range ents {
		off := l.offsetAtLocked(e.Index)
		e.Data = append([]byte(nil), e.Data...)
		l.ents = append(l.ents, e)
		l.offs = append(l.offs, off)
	}
	return nil
}

func (l *memLog) Sync() error {
	l.mu.Lock()
	hook := l.syncHook
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return storage.ErrClosed
	}
	return nil
}

func (l *memLog) SaveState(hs *raftpb.HardState, cs *raftpb.ConfState) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if hs != nil {
		l.hs = proto.Clone(hs).(*raftpb.HardState)
	}
	if cs != nil {
		l.cs = proto.Clone(cs).(*raftpb.ConfState)
	}
	return nil
}

func (l *memLog) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < l.first || index > l.last() {
		return errors.New("memlog: snapshot index out of range")
	}
	l.snap = &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{
		Index: new(index), Term: new(l.ents[index-l.first].Term), ConfState: proto.Clone(cs).(*raftpb.ConfState)}}
	return nil
}

func (l *memLog) ApplySnapshot(snap *raftpb.Snapshot, nextOffset uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.snap = proto.Clone(snap).(*raftpb.Snapshot)
	l.first = snap.GetMetadata().GetIndex() + 1
	l.ents, l.offs = nil, nil
	l.snapOffset, l.start = nextOffset, nextOffset
	l.cs = proto.Clone(snap.GetMetadata().GetConfState()).(*raftpb.ConfState)
	return nil
}

func (l *memLog) OffsetAt(index uint64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < l.first || index > l.last()+1 {
		return 0, storage.ErrOutOfBounds
	}
	return l.offsetAtLocked(index), nil
}

func (l *memLog) StartOffset() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start
}

func (l *memLog) NextOffset() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.offsetAtLocked(l.last() + 1)
}

func (l *memLog) Read(offset, maxOffset uint64, maxBytes int) ([]storage.Batch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := l.offsetAtLocked(l.last() + 1)
	if offset < l.start || offset > next {
		return nil, &storage.OffsetOutOfRangeError{Offset: offset, Start: l.start, End: next}
	}
	var out []storage.Batch
	size := 0
	for i, e := range l.ents {
		off := l.offs[i]
		if e.Records == 0 || off+uint64(e.Records) <= offset {
			continue
		}
		if off >= maxOffset {
			break
		}
		if len(out) > 0 && size+len(e.Data) > maxBytes {
			break
		}
		size += len(e.Data)
		out = append(out, storage.Batch{BaseOffset: off, Records: e.Records, Index: e.Index, Term: e.Term,
			MaxTimestamp: e.MaxTimestamp, Data: e.Data})
	}
	return out, nil
}

func (l *memLog) OffsetForTime(ts int64) (uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.ents {
		if e.Records > 0 && e.MaxTimestamp >= ts && l.offs[i] >= l.start {
			return l.offs[i], true, nil
		}
	}
	return 0, false, nil
}

// ApplyRetention drops every entry up to safeIndex when a size limit is
// set (enough to force followers onto snapshots in tests).
func (l *memLog) ApplyRetention(safeIndex uint64, _, retentionBytes int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if retentionBytes <= 0 || safeIndex < l.first || safeIndex > l.last() {
		return 0, nil
	}
	n := safeIndex - l.first + 1
	next := l.offsetAtLocked(safeIndex + 1)
	l.ents, l.offs = append([]storage.Entry(nil), l.ents[n:]...), append([]uint64(nil), l.offs[n:]...)
	l.first = safeIndex + 1
	l.snapOffset = next
	l.start = max(l.start, next)
	return int(n), nil
}

func (l *memLog) DeleteBefore(offset uint64, _ uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset > l.start {
		l.start = offset
	}
	return nil
}

func (l *memLog) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, e := range l.ents {
		n += int64(len(e.Data))
	}
	return n
}

func (l *memLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}
