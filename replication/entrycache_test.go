package replication

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func cacheEnts(first, n uint64, term uint64) []*raftpb.Entry {
	out := make([]*raftpb.Entry, n)
	for i := range out {
		out[i] = &raftpb.Entry{Index: new(first + uint64(i)), Term: new(term), Data: make([]byte, 100)}
	}
	return out
}

func TestEntryCache(t *testing.T) {
	var c entryCache
	if _, ok := c.get(1, 2, 1<<30); ok {
		t.Fatal("empty cache served entries")
	}
	c.appended(cacheEnts(5, 5, 1)) // 5..9
	if ents, ok := c.get(5, 10, 1<<30); !ok || len(ents) != 5 || ents[0].GetIndex() != 5 {
		t.Fatalf("get 5..9: ok=%v %d entries", ok, len(ents))
	}
	if _, ok := c.get(4, 6, 1<<30); ok {
		t.Fatal("served an entry below the cache")
	}
	if _, ok := c.get(8, 11, 1<<30); ok {
		t.Fatal("served an entry above the cache")
	}
	// The size limit as raft counts it: at least one entry.
	if ents, _ := c.get(5, 10, 1); len(ents) != 1 {
		t.Fatalf("maxSize 1: %d entries, want 1", len(ents))
	}
	// A new leader's entries replace the tail from their first index.
	c.appended(cacheEnts(7, 2, 2)) // 5,6 (term 1), 7,8 (term 2)
	ents, ok := c.get(5, 9, 1<<30)
	if !ok || len(ents) != 4 || ents[2].GetTerm() != 2 || ents[1].GetTerm() != 1 {
		t.Fatalf("after truncation: ok=%v %v", ok, ents)
	}
	if _, ok := c.get(9, 10, 1<<30); ok {
		t.Fatal("served a truncated entry")
	}
	// Appending to what raft is given must not change the cache.
	_ = append(ents[:1], &raftpb.Entry{Index: new(uint64(99))})
	if e, _ := c.get(6, 7, 1<<30); e[0].GetIndex() != 6 {
		t.Fatal("the cache shares its array with a caller")
	}
	c.appliedTo(6)
	if _, ok := c.get(6, 7, 1<<30); ok {
		t.Fatal("served an applied entry")
	}
	if _, ok := c.get(7, 9, 1<<30); !ok {
		t.Fatal("dropped an unapplied entry")
	}
	// A gap starts over.
	c.appended(cacheEnts(20, 1, 3))
	if _, ok := c.get(7, 8, 1<<30); ok {
		t.Fatal("kept entries across a gap")
	}
	if _, ok := c.get(20, 21, 1<<30); !ok {
		t.Fatal("lost the entry after a gap")
	}
	c.appliedTo(20)
	if c.bytes != 0 || len(c.ents) != 0 {
		t.Fatalf("applied all: %d bytes, %d entries left", c.bytes, len(c.ents))
	}
}

// Past its byte bound the cache keeps its oldest entries, the next to
// apply, and starts over after the gap.
func TestEntryCacheBound(t *testing.T) {
	var c entryCache
	big := func(i uint64) *raftpb.Entry {
		return &raftpb.Entry{Index: new(i), Term: new(uint64(1)), Data: make([]byte, maxCachedEntryBytes/3)}
	}
	c.appended([]*raftpb.Entry{big(1), big(2), big(3), big(4)})
	if _, ok := c.get(1, 4, 1<<40); !ok {
		t.Fatal("dropped the oldest entries")
	}
	if _, ok := c.get(4, 5, 1<<40); ok {
		t.Fatal("kept an entry past the bound")
	}
	c.appliedTo(3)
	c.appended([]*raftpb.Entry{big(5)})
	if _, ok := c.get(5, 6, 1<<40); !ok {
		t.Fatal("did not start over after the gap")
	}
	if _, ok := c.get(4, 5, 1<<40); ok {
		t.Fatal("served an entry it never kept")
	}
}
