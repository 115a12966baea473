package storage

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// The conformance test drives raft.MemoryStorage and Log through the same
// operations and demands identical answers from every raft.Storage method,
// errors included. Segments hold one entry each so that retention can
// compact at any index, like MemoryStorage.Compact.

type confStorage struct {
	t   *testing.T
	mem *raft.MemoryStorage
	log *Log
}

func pbEnt(e Entry) *raftpb.Entry {
	var data []byte
	if len(e.Data) > 0 {
		data = append([]byte(nil), e.Data...)
	}
	return &raftpb.Entry{Index: new(e.Index), Term: new(e.Term), Type: new(e.Type), Data: data}
}

func (c *confStorage) append(ents ...Entry) {
	c.t.Helper()
	pbs := make([]*raftpb.Entry, len(ents))
	for i, e := range ents {
		pbs[i] = pbEnt(e)
	}
	if err := c.mem.Append(pbs); err != nil {
		c.t.Fatal(err)
	}
	mustAppend(c.t, c.log, ents...)
	c.check()
}

func (c *confStorage) snapshot(i uint64, cs *raftpb.ConfState, data []byte) {
	c.t.Helper()
	_, merr := c.mem.CreateSnapshot(i, cs, data)
	lerr := c.log.CreateSnapshot(i, cs, data)
	if !errors.Is(lerr, merr) && !(merr == nil && lerr == nil) {
		c.t.Fatalf("CreateSnapshot(%d): mem %v, log %v", i, merr, lerr)
	}
	c.check()
}

// compact is MemoryStorage.Compact(i) against retention up to i.
func (c *confStorage) compact(i uint64) {
	c.t.Helper()
	merr := c.mem.Compact(i)
	n, lerr := c.log.ApplyRetention(i, 0, 1)
	if lerr != nil {
		c.t.Fatal(lerr)
	}
	if (merr == nil) != (n > 0) {
		c.t.Fatalf("compact(%d): mem %v, log deleted %d segments", i, merr, n)
	}
	c.check()
}

func (c *confStorage) applySnapshot(index, term uint64, cs *raftpb.ConfState, data []byte) {
	c.t.Helper()
	snap := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: cs}}
	merr := c.mem.ApplySnapshot(snap)
	lerr := c.log.ApplySnapshot(snap, 1000+index)
	if !errors.Is(lerr, merr) && !(merr == nil && lerr == nil) {
		c.t.Fatalf("ApplySnapshot(%d): mem %v, log %v", index, merr, lerr)
	}
	c.check()
}

func (c *confStorage) reopen() {
	c.t.Helper()
	if err := c.log.Sync(); err != nil {
		c.t.Fatal(err)
	}
	if err := c.log.Close(); err != nil {
		c.t.Fatal(err)
	}
	c.log = mustOpen(c.t, c.log.dir, c.log.opts)
	c.check()
}

func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return errors.Is(a, b) || errors.Is(b, a)
}

func (c *confStorage) check() {
	c.t.Helper()
	m, l := c.mem, c.log
	mf, _ := m.FirstIndex()
	lf, err := l.FirstIndex()
	if err != nil || mf != lf {
		c.t.Fatalf("FirstIndex: mem %d, log %d %v", mf, lf, err)
	}
	ml, _ := m.LastIndex()
	ll, err := l.LastIndex()
	if err != nil || ml != ll {
		c.t.Fatalf("LastIndex: mem %d, log %d %v", ml, ll, err)
	}
	for i := uint64(0); i <= ml+2; i++ {
		mt, merr := m.Term(i)
		lt, lerr := l.Term(i)
		if mt != lt || !sameErr(merr, lerr) {
			c.t.Fatalf("Term(%d): mem %d %v, log %d %v", i, mt, merr, lt, lerr)
		}
	}
	for lo := uint64(0); lo <= ml+1; lo++ {
		for hi := max(lo, 1); hi <= ml+1; hi++ {
			for _, maxSize := range []uint64{0, 1, 40, 100, 250, 1 << 40} {
				me, merr := m.Entries(lo, hi, maxSize)
				le, lerr := l.Entries(lo, hi, maxSize)
				if !sameErr(merr, lerr) || len(me) != len(le) {
					c.t.Fatalf("Entries(%d, %d, %d): mem %d %v, log %d %v", lo, hi, maxSize, len(me), merr, len(le), lerr)
				}
				for k := range me {
					if !proto.Equal(me[k], le[k]) {
						c.t.Fatalf("Entries(%d, %d, %d)[%d]: mem %v, log %v", lo, hi, maxSize, k, me[k], le[k])
					}
				}
			}
		}
	}
	mhs, mcs, _ := m.InitialState()
	lhs, lcs, err := l.InitialState()
	if err != nil || !proto.Equal(mcs, lcs) || !proto.Equal(mhs, lhs) {
		c.t.Fatalf("InitialState: mem %v %v, log %v %v %v", mhs, mcs, lhs, lcs, err)
	}
	ms, _ := m.Snapshot()
	ms.Metadata.ConfState = raftpb.EnsureConfState(ms.Metadata.ConfState)
	ls, err := l.Snapshot()
	if err != nil || !proto.Equal(ms, ls) {
		c.t.Fatalf("Snapshot: mem %v, log %v %v", ms, ls, err)
	}
}

func ents(lo, hi, term uint64) []Entry {
	var out []Entry
	for i := lo; i <= hi; i++ {
		e := Entry{Index: i, Term: term, Type: raftpb.EntryNormal}
		switch i % 4 {
		case 1:
			e.Data = payload(i, int(10+i*7%60))
			e.Records = 1
		case 2:
			e.Type = raftpb.EntryConfChange
			e.Data = payload(i, 20)
		case 3:
			e.Data = payload(i, 100)
			e.Records = 3
		}
		out = append(out, e)
	}
	return out
}

func TestRaftStorageConformance(t *testing.T) {
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	for _, cacheBytes := range []int64{-1, 300, 1 << 20} {
		t.Run(fmt.Sprintf("cache=%d", cacheBytes), func(t *testing.T) {
			o := Options{FS: faultfs.New(), SegmentBytes: 1, IndexIntervalBytes: 64, CacheBytes: cacheBytes}
			c := &confStorage{t: t, mem: raft.NewMemoryStorage(), log: mustOpen(t, "/p", o)}
			defer func() { c.log.Close() }()
			c.check()
			c.append(ents(1, 5, 1)...)
			c.append(ents(6, 12, 2)...)
			c.append(ents(9, 14, 3)...) // overwrite a suffix
			c.reopen()
			c.append(ents(15, 16, 3)...)
			c.append(ents(3, 4, 1)...) // overwrite down to 3 with the same term
			c.append(ents(5, 9, 4)...)
			c.snapshot(4, cs, []byte("state@4"))
			c.snapshot(4, cs, []byte("again")) // out of date
			c.snapshot(3, nil, nil)            // out of date
			c.compact(4)                       // retention deletes up to a snapshot only
			c.compact(2)                       // already compacted
			c.reopen()
			c.append(ents(2, 6, 1)...) // starts below first: prefix ignored
			c.snapshot(6, nil, []byte("state@6"))
			c.append(ents(7, 7, 5)...) // retention never deletes the active segment
			c.compact(6)
			c.reopen()
			c.append(ents(7, 10, 5)...)
			c.applySnapshot(20, 7, cs, []byte("installed"))
			c.applySnapshot(15, 6, cs, nil) // out of date
			c.reopen()
			c.append(ents(21, 25, 8)...)
			c.append(ents(23, 24, 9)...)
			c.snapshot(22, nil, []byte("x"))
			c.compact(22)
			// Unlike MemoryStorage.Compact, retention never passes the snapshot.
			if n, err := c.log.ApplyRetention(24, 0, 1); n != 0 || err != nil {
				t.Fatalf("retention above the snapshot deleted %d: %v", n, err)
			}
			c.reopen()
		})
	}
}

func TestSaveStateInitialState(t *testing.T) {
	fs := faultfs.New()
	l := mustOpen(t, "/p", memOpts(fs))
	hs, cs, err := l.InitialState()
	if err != nil || hs != nil || len(cs.GetVoters()) != 0 {
		t.Fatalf("fresh: %v %v %v", hs, cs, err)
	}
	want := &raftpb.HardState{Term: new(uint64(3)), Vote: new(uint64(2)), Commit: new(uint64(7))}
	if err := l.SaveState(want, &raftpb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{4}}); err != nil {
		t.Fatal(err)
	}
	if err := l.SaveState(nil, nil); err != nil {
		t.Fatal(err)
	}
	syncs := fs.Syncs()
	if err := l.SaveState(proto.Clone(want).(*raftpb.HardState), nil); err != nil {
		t.Fatal(err)
	}
	if fs.Syncs() != syncs {
		t.Fatal("an unchanged hard state was written")
	}
	l.Close()
	// Only what was synced through the atomic replace survives a crash.
	l = mustOpen(t, "/p", memOpts(fs.Crash()))
	defer l.Close()
	hs, cs, err = l.InitialState()
	if err != nil || !proto.Equal(hs, want) || len(cs.GetVoters()) != 2 || cs.GetLearners()[0] != 4 {
		t.Fatalf("after crash: %v %v %v", hs, cs, err)
	}
}
