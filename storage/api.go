package storage

// This file holds the public surface of Log while the implementation lands.

import (
	"errors"

	"go.etcd.io/raft/v3/raftpb"
)

var errNotImplemented = errors.New("storage: not implemented yet")

// Log is one partition's segmented log: the Raft log and the record log at
// once. It implements raft.Storage. All methods are safe for concurrent use.
type Log struct {
	dir  string
	opts Options
}

// Open creates or recovers the log in dir.
func Open(dir string, opts Options) (*Log, error) {
	return nil, errNotImplemented
}

// Append writes entries after truncating any suffix they replace.
// ents must be contiguous; ents[0].Index <= LastIndex() truncates the log
// from ents[0].Index first; entries below FirstIndex() are ignored. The
// entries are written but not durable until Sync returns. Data is copied.
func (l *Log) Append(ents []Entry) error { return errNotImplemented }

// Sync makes everything appended so far durable. Concurrent calls (of this
// and other logs sharing the SyncGroup) share fsyncs. After an fsync or
// write error the log is failed: every later write returns the error.
func (l *Log) Sync() error { return errNotImplemented }

// InitialState implements raft.Storage.
func (l *Log) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	return nil, nil, errNotImplemented
}

// Entries implements raft.Storage.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	return nil, errNotImplemented
}

// Term implements raft.Storage.
func (l *Log) Term(i uint64) (uint64, error) { return 0, errNotImplemented }

// LastIndex implements raft.Storage.
func (l *Log) LastIndex() (uint64, error) { return 0, errNotImplemented }

// FirstIndex implements raft.Storage.
func (l *Log) FirstIndex() (uint64, error) { return 0, errNotImplemented }

// Snapshot implements raft.Storage.
func (l *Log) Snapshot() (*raftpb.Snapshot, error) { return nil, errNotImplemented }

// SaveState durably replaces the hard state and/or conf state (nil =
// unchanged) with an atomic file replace.
func (l *Log) SaveState(hs *raftpb.HardState, cs *raftpb.ConfState) error {
	return errNotImplemented
}

// CreateSnapshot durably records a snapshot at index (<= LastIndex()).
// Snapshot() returns it afterwards. It does not remove entries; retention
// may then delete segments up to the snapshot.
func (l *Log) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error {
	return errNotImplemented
}

// ApplySnapshot installs a snapshot received from the leader: it drops the
// whole log; the next entry is snap.Index+1 and takes offset nextOffset.
func (l *Log) ApplySnapshot(snap *raftpb.Snapshot, nextOffset uint64) error {
	return errNotImplemented
}

// OffsetAt returns the first offset of the entry at index (the next offset
// before it). index may be LastIndex()+1.
func (l *Log) OffsetAt(index uint64) (uint64, error) { return 0, errNotImplemented }

// StartOffset is the first readable offset.
func (l *Log) StartOffset() uint64 { return 0 }

// NextOffset is the offset the next record batch will take.
func (l *Log) NextOffset() uint64 { return 0 }

// Read returns the stored batches covering [offset, maxOffset): at least
// one batch if any, more while their data fits in maxBytes. offset below
// StartOffset or above NextOffset returns *OffsetOutOfRangeError.
func (l *Log) Read(offset, maxOffset uint64, maxBytes int) ([]Batch, error) {
	return nil, errNotImplemented
}

// OffsetForTime returns the base offset of the first batch with
// MaxTimestamp >= ts; ok is false if there is none.
func (l *Log) OffsetForTime(ts int64) (offset uint64, ok bool, err error) {
	return 0, false, errNotImplemented
}

// ApplyRetention deletes whole old segments older than retentionMs or beyond
// retentionBytes (<= 0 = unlimited), never an entry above safeIndex nor above
// the latest snapshot, never the active segment. It returns how many
// segments it deleted.
func (l *Log) ApplyRetention(safeIndex uint64, retentionMs, retentionBytes int64) (int, error) {
	return 0, errNotImplemented
}

// DeleteBefore moves the log start offset to offset (Kafka DeleteRecords),
// durably, and deletes whole segments below it that are at or below
// safeIndex and the latest snapshot.
func (l *Log) DeleteBefore(offset uint64, safeIndex uint64) error { return errNotImplemented }

// Size is the total size of the segment files in bytes.
func (l *Log) Size() int64 { return 0 }

// Close syncs and closes the log.
func (l *Log) Close() error { return errNotImplemented }
