package replication

import (
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// maxCachedEntryBytes bounds the entries a partition keeps for raft
// beyond what the storage cache holds. Appends past it are not kept (the
// oldest entries are the next ones to apply); their apply reads the log.
const maxCachedEntryBytes = 16 << 20

// entryCache keeps the entries of the log's tail that are appended but not
// yet applied, exactly as raft handed them over, so the apply that follows
// their commit gets them back without a read from the storage log (a copy
// and a checksum of every batch). With AsyncStorageWrites raft forgets its
// own copy once an entry is stable and asks the Storage for it again.
// Guarded by raftMu: raft calls Storage only from a pass.
type entryCache struct {
	first uint64 // index of ents[0]
	ents  []*raftpb.Entry
	bytes int
}

// appended records entries just written to the log; an append that
// starts at or below the cached tail replaces it from there.
func (c *entryCache) appended(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	i := ents[0].GetIndex()
	switch {
	case len(c.ents) > 0 && i >= c.first && i <= c.first+uint64(len(c.ents)):
		c.truncate(i)
	default:
		c.reset()
		c.first = i
	}
	for _, e := range ents {
		if c.bytes+len(e.GetData()) > maxCachedEntryBytes {
			break // a later append starts over after the gap
		}
		c.ents = append(c.ents, e)
		c.bytes += len(e.GetData())
	}
	if len(c.ents) == 0 {
		c.reset()
	}
}

// truncate drops entries at index i and after.
func (c *entryCache) truncate(i uint64) {
	for n := uint64(len(c.ents)); n > 0 && c.first+n-1 >= i; n-- {
		c.bytes -= len(c.ents[n-1].GetData())
		c.ents[n-1] = nil
		c.ents = c.ents[:n-1]
	}
}

func (c *entryCache) dropFront() {
	c.bytes -= len(c.ents[0].GetData())
	c.ents[0] = nil
	c.ents = c.ents[1:]
	c.first++
}

// appliedTo forgets entries up to index i.
func (c *entryCache) appliedTo(i uint64) {
	for len(c.ents) > 0 && c.first <= i {
		c.dropFront()
	}
	if len(c.ents) == 0 {
		c.ents = nil // let the backing array go
	}
}

func (c *entryCache) reset() {
	clear(c.ents)
	c.ents, c.bytes, c.first = nil, 0, 0
}

// get returns entries [lo, hi) limited to maxSize bytes as raft counts
// them (at least one), or ok=false when the cache does not hold them all.
func (c *entryCache) get(lo, hi, maxSize uint64) ([]*raftpb.Entry, bool) {
	if len(c.ents) == 0 || lo < c.first || hi > c.first+uint64(len(c.ents)) || lo >= hi {
		return nil, false
	}
	ents := c.ents[lo-c.first : hi-c.first]
	var size uint64
	for n, e := range ents {
		size += uint64(proto.Size(e))
		if n > 0 && size > maxSize {
			ents = ents[:n]
			break
		}
	}
	// A copy of the pointers: raft may append to what it is given.
	return append([]*raftpb.Entry(nil), ents...), true
}

// raftStorage is the raft.Storage of a partition: its log, with Entries
// served from the entry cache when it holds them.
type raftStorage struct {
	logStore
	p *Partition
}

// Snapshot is the snapshot right before the log's first entry, so a
// follower that installs it receives every entry the leader still holds
// (the records retention keeps), not only those after the latest
// snapshot.
func (s raftStorage) Snapshot() (*raftpb.Snapshot, error) { return s.logStore.StartSnapshot() }

func (s raftStorage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	if ents, ok := s.p.raftMu.cache.get(lo, hi, maxSize); ok {
		return ents, nil
	}
	return s.logStore.Entries(lo, hi, maxSize)
}
