package replication

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/storage"
)

// logStore is the part of *storage.Log a partition uses. It exists so tests
// can substitute faults; the product always opens a *storage.Log.
type logStore interface {
	raft.Storage
	Append(ents []storage.Entry) error
	Sync() error
	SaveState(hs *raftpb.HardState, cs *raftpb.ConfState) error
	StartSnapshot() (*raftpb.Snapshot, error)
	SegmentBaseAfter(index uint64) uint64
	CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error
	ApplySnapshot(snap *raftpb.Snapshot, nextOffset uint64) error
	OffsetAt(index uint64) (uint64, error)
	StartOffset() uint64
	NextOffset() uint64
	Read(offset, maxOffset uint64, maxBytes int) ([]storage.Batch, error)
	OffsetForTime(ts int64) (uint64, bool, error)
	ApplyRetention(safeIndex uint64, retentionMs, retentionBytes int64) (int, error)
	DeleteBefore(offset uint64, safeIndex uint64) error
	Size() int64
	Close() error
}

var _ logStore = (*storage.Log)(nil)

func openStorageLog(dir string, opts storage.Options) (logStore, error) {
	return storage.Open(dir, opts)
}
