package storage

import (
	"go.etcd.io/raft/v3/raftpb"
)

// entryBox holds a raftpb.Entry and the values its pointer fields point to,
// so that building one costs a single allocation.
type entryBox struct {
	e           raftpb.Entry
	term, index uint64
	typ         raftpb.EntryType
}

func newPBEntry(index, term uint64, typ raftpb.EntryType, data []byte) *raftpb.Entry {
	b := &entryBox{term: term, index: index, typ: typ}
	b.e.Term, b.e.Index, b.e.Type, b.e.Data = &b.term, &b.index, &b.typ, data
	return &b.e
}

func sov(x uint64) uint64 {
	n := uint64(1)
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// pbSize is proto.Size of an entry built by newPBEntry (all of Type, Term
// and Index set; Data set when non-empty). raft limits Entries by it.
func pbSize(index, term uint64, typ raftpb.EntryType, dataLen int) uint64 {
	n := 1 + sov(uint64(typ)) + 1 + sov(term) + 1 + sov(index)
	if dataLen > 0 {
		n += 1 + sov(uint64(dataLen)) + uint64(dataLen)
	}
	return n
}

// cacheOverhead is charged per cached entry on top of its data.
const cacheOverhead = 128

type cachedEntry struct {
	e      *raftpb.Entry
	offset uint64 // next offset before the entry
	size   uint64 // pbSize
}

// entryCache holds the most recent entries, contiguous, up to max bytes.
// Guarded by Log.mu.
type entryCache struct {
	max   int64
	lo    uint64 // index of ents[0]
	ents  []cachedEntry
	bytes int64
}

func (c *entryCache) hi() uint64 { return c.lo + uint64(len(c.ents)) }

func (c *entryCache) get(i uint64) (*cachedEntry, bool) {
	if len(c.ents) == 0 || i < c.lo || i >= c.hi() {
		return nil, false
	}
	return &c.ents[i-c.lo], true
}

func (c *entryCache) add(index uint64, ce cachedEntry) {
	if c.max <= 0 {
		return
	}
	if len(c.ents) > 0 && index != c.hi() {
		c.reset()
	}
	if len(c.ents) == 0 {
		c.lo = index
	}
	c.ents = append(c.ents, ce)
	c.bytes += int64(len(ce.e.Data)) + cacheOverhead
	c.evict()
}

func (c *entryCache) evict() {
	k := 0
	for c.bytes > c.max && k < len(c.ents) {
		c.bytes -= int64(len(c.ents[k].e.Data)) + cacheOverhead
		c.ents[k] = cachedEntry{}
		k++
	}
	if k == 0 {
		return
	}
	c.lo += uint64(k)
	c.ents = c.ents[k:]
	if len(c.ents) < cap(c.ents)/4 {
		c.ents = append([]cachedEntry(nil), c.ents...)
	}
}

// truncate drops entries >= i.
func (c *entryCache) truncate(i uint64) {
	if len(c.ents) == 0 || i >= c.hi() {
		return
	}
	if i <= c.lo {
		c.reset()
		return
	}
	for k := i - c.lo; k < uint64(len(c.ents)); k++ {
		c.bytes -= int64(len(c.ents[k].e.Data)) + cacheOverhead
		c.ents[k] = cachedEntry{}
	}
	c.ents = c.ents[:i-c.lo]
}

func (c *entryCache) reset() {
	clear(c.ents)
	c.ents = c.ents[:0]
	c.bytes = 0
}
