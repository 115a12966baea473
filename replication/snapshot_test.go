package replication

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// retentionCluster is a three-node cluster with group 1 open, small
// segments and frequent snapshots and retention checks, and a function
// that sets retention.bytes (0 = unlimited) on the given nodes' replicas.
func retentionCluster(t *testing.T) (*testCluster, func(bytes int64, ids ...uint64)) {
	c := newTestClusterWith(t, 3, false, func(cfg *HostConfig) {
		cfg.Storage.SegmentBytes = 1024
		cfg.SnapshotEntries = 10
		cfg.RetentionCheck = 20 * time.Millisecond
	})
	c.open(1)
	return c, func(bytes int64, ids ...uint64) {
		for _, h := range ids {
			pp, _ := c.host(h).Partition(1)
			pp.UpdateConfig(PartitionConfig{RetentionBytes: bytes})
		}
	}
}

func TestFollowerBehindLogStartGetsSnapshot(t *testing.T) {
	c, setRetention := retentionCluster(t)
	ctx := testCtx(t)
	lh, p := c.leader(1)
	setRetention(1, 1, 2, 3)
	var f uint64 = 1
	if lh.NodeID() == 1 {
		f = 2
	}
	c.net.Isolate(f, 1, 2, 3)
	for i := 0; i < 60; i++ {
		if _, err := p.Produce(ctx, idemBatch(1, 0, int32(i), 1), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until retention moved the leader's log past the follower.
	deadline := time.Now().Add(30 * time.Second)
	for p.StartOffset() < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("leader start offset %d, retention did not run", p.StartOffset())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Retention stops, so the leader's log holds still; the follower must
	// then hold every record the leader holds, not only those after the
	// leader's latest snapshot.
	setRetention(0, 1, 2, 3)
	c.net.HealAll()
	fp, _ := c.host(f).Partition(1)
	waitHW(t, fp, p.HighWatermark())
	if fp.StartOffset() == 0 {
		t.Fatal("follower did not install a snapshot")
	}
	sameRecords(t, p, fp)
	// The follower took the producer state with the snapshot: after a
	// failover to it, a retry is recognized and a gap rejected.
	fp.raftMu.Lock()
	ps := fp.raftMu.sm.producers[1]
	fp.raftMu.Unlock()
	if ps == nil || ps.Batches[len(ps.Batches)-1].LastSeq != 59 {
		t.Fatalf("follower producer state %+v, want last sequence 59", ps)
	}
}

// sameRecords fails unless the follower starts where the leader does and
// holds the same batches.
func sameRecords(t *testing.T, leader, follower *Partition) {
	t.Helper()
	if follower.StartOffset() != leader.StartOffset() {
		t.Fatalf("follower starts at %d, leader at %d: records the leader keeps are missing", follower.StartOffset(), leader.StartOffset())
	}
	a, b := readAll(t, leader), readAll(t, follower)
	if len(a) != len(b) {
		t.Fatalf("leader holds %d batches, follower %d", len(a), len(b))
	}
	for i := range a {
		if a[i].BaseOffset != b[i].BaseOffset || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("batch %d differs: leader offset %d, follower offset %d", i, a[i].BaseOffset, b[i].BaseOffset)
		}
	}
}

// A replica added after retention deleted segments (a reassignment) gets a
// snapshot taken before it joined, then every record the leader keeps: a
// move does not shorten the partition's history.
func TestNewReplicaGetsEveryRetainedRecord(t *testing.T) {
	c, setRetention := retentionCluster(t)
	ctx := testCtx(t)
	setRetention(1, 1, 2, 3)
	_, p := c.leader(1)
	for i := 0; i < 60; i++ {
		if _, err := p.Produce(ctx, idemBatch(1, 0, int32(i), 1), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Status().FirstIndex <= 1 || p.StartOffset() < 30 {
		if time.Now().After(deadline) {
			t.Fatalf("leader start offset %d, retention did not run", p.StartOffset())
		}
		time.Sleep(5 * time.Millisecond)
	}
	setRetention(0, 1, 2, 3)
	c.mu.Lock()
	c.dirs[4] = t.TempDir()
	c.mu.Unlock()
	p4, err := c.start(4).OpenPartition(PartitionSpec{GroupID: 1, Dir: "p1", Voters: []uint64{1, 2, 3}, Join: true})
	if err != nil {
		t.Fatal(err)
	}
	_, p = c.leader(1)
	if err := p.ChangeReplicas(ctx, ReplicaChange{Type: AddLearner, NodeID: 4}); err != nil {
		t.Fatal(err)
	}
	waitHW(t, p4, p.HighWatermark())
	if p4.Status().FirstIndex <= 1 {
		t.Fatal("node 4 replicated the whole log: no snapshot was needed")
	}
	sameRecords(t, p, p4)
}

func TestDeleteRecords(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	_, p := c.leader(1)
	for i := 0; i < 10; i++ {
		if _, err := p.Produce(ctx, testBatch(i), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	start, err := p.DeleteRecords(ctx, 4)
	if err != nil || start != 4 {
		t.Fatalf("delete records: %d %v", start, err)
	}
	if _, err := p.DeleteRecords(ctx, 11); err == nil {
		t.Fatal("delete past the high watermark accepted")
	}
	for _, h := range []uint64{1, 2, 3} {
		pp, _ := c.host(h).Partition(1)
		deadline := time.Now().Add(30 * time.Second)
		for pp.StartOffset() != 4 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d start offset %d, want 4", h, pp.StartOffset())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if bs := readAll(t, pp); len(bs) != 6 || bs[0].BaseOffset != 4 {
			t.Fatalf("node %d read %d batches from %d", h, len(bs), bs[0].BaseOffset)
		}
	}
}

// nameRecipient adds the recipient of a snapshot to its configuration as a
// learner when it is in none of its lists, and leaves it alone otherwise.
func TestNameRecipient(t *testing.T) {
	msg := func(to uint64, cs *raftpb.ConfState) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: new(to),
			Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(2)), ConfState: cs}}}
	}
	for _, tc := range []struct {
		name         string
		to           uint64
		cs           *raftpb.ConfState
		wantLearners []uint64
	}{
		{"added after the snapshot", 4, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}, []uint64{4}},
		{"a voter", 2, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}, nil},
		{"a learner", 4, &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}, []uint64{4}},
		{"leaving in a joint configuration", 3, &raftpb.ConfState{Voters: []uint64{1, 2, 4}, VotersOutgoing: []uint64{1, 2, 3}, LearnersNext: []uint64{3}}, nil},
		{"new to a joint configuration", 5, &raftpb.ConfState{Voters: []uint64{1, 2, 4}, VotersOutgoing: []uint64{1, 2, 3}}, []uint64{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := proto.Clone(tc.cs).(*raftpb.ConfState)
			m := msg(tc.to, tc.cs)
			nameRecipient(m)
			got := m.GetSnapshot().GetMetadata().GetConfState()
			if !slices.Equal(got.GetLearners(), tc.wantLearners) || !slices.Equal(got.GetVoters(), orig.GetVoters()) ||
				!slices.Equal(got.GetVotersOutgoing(), orig.GetVotersOutgoing()) {
				t.Fatalf("conf state %v, want learners %v and the same voters", got, tc.wantLearners)
			}
			if !proto.Equal(tc.cs, orig) {
				t.Fatal("the original conf state was modified")
			}
		})
	}
}
