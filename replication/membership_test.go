package replication

import (
	"slices"
	"testing"
	"time"
)

func TestMoveReplicaToNewNode(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	acked := map[uint64]string{}
	for i := 0; i < 20; i++ {
		b := testBatch(i)
		res, err := c.produce(ctx, 1, b)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	// Node 4 joins empty and learns the group from the leader.
	c.mu.Lock()
	c.dirs[4] = t.TempDir()
	c.mu.Unlock()
	h4 := c.start(4)
	p4, err := h4.OpenPartition(PartitionSpec{GroupID: 1, Dir: "p1", Voters: []uint64{1, 2, 3, 4}, Join: true})
	if err != nil {
		t.Fatal(err)
	}
	_, lp := c.leader(1)
	if err := lp.ChangeReplicas(ctx, ReplicaChange{Type: AddLearner, NodeID: 4}); err != nil {
		t.Fatal(err)
	}
	waitHW(t, p4, lp.HighWatermark())
	if err := lp.ChangeReplicas(ctx, ReplicaChange{Type: AddVoter, NodeID: 4}); err != nil {
		t.Fatal(err)
	}
	// Remove a replica that is not the leader, then move leadership to 4.
	lh, lp := c.leader(1)
	var victim uint64
	for id := uint64(1); id <= 3; id++ {
		if id != lh.NodeID() {
			victim = id
			break
		}
	}
	if err := lp.ChangeReplicas(ctx, ReplicaChange{Type: RemoveReplica, NodeID: victim}); err != nil {
		t.Fatal(err)
	}
	if err := c.host(victim).RemovePartition(1); err != nil {
		t.Fatal(err)
	}
	st := lp.Status()
	if slices.Contains(st.Voters, victim) || !slices.Contains(st.Voters, 4) || len(st.Voters) != 3 {
		t.Fatalf("voters after the move: %v", st.Voters)
	}
	// A transfer aborts when the target does not take over within an
	// election timeout (a loaded machine); ask again, as an operator would.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; !p4.IsLeader(); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("leadership did not move to node 4 (leader %d)", p4.Leader())
		}
		if i%200 == 0 {
			if _, cur := c.leaderOrNil(1); cur != nil {
				cur.TransferLeadership(4)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 20; i < 30; i++ {
		b := testBatch(i)
		res, err := c.produce(ctx, 1, b)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	checkReplicasAgree(t, c, 1, acked)
}
