package replication

import (
	"testing"
	"time"
)

func waitQuiesced(t *testing.T, ps ...*Partition) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range ps {
		for !p.quiesced.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("node %d group %d never quiesced", p.h.cfg.NodeID, p.id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestIdleGroupQuiescesAndWakes(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	_, p := c.leader(1)
	if _, err := p.Produce(ctx, testBatch(0), AcksAll); err != nil {
		t.Fatal(err)
	}
	var all []*Partition
	for id := uint64(1); id <= 3; id++ {
		pp, _ := c.host(id).Partition(1)
		all = append(all, pp)
	}
	waitQuiesced(t, all...)
	// A quiesced follower serves the whole log; a produce wakes the group.
	for _, pp := range all {
		waitHW(t, pp, 1)
	}
	res, err := p.Produce(ctx, testBatch(1), AcksAll)
	if err != nil || res.BaseOffset != 1 {
		t.Fatalf("produce into a quiesced group: %v at %d", err, res.BaseOffset)
	}
	for _, pp := range all {
		waitHW(t, pp, 2)
	}
	waitQuiesced(t, all...)
}

// The leader of a quiesced group dies: its followers do not tick, so only
// node liveness can wake them; they must elect a new leader.
func TestQuiescedFollowersElectAfterLeaderDies(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	lh, p := c.leader(1)
	acked := map[uint64]string{}
	b := testBatch(0)
	res, err := p.Produce(ctx, b, AcksAll)
	if err != nil {
		t.Fatal(err)
	}
	acked[res.BaseOffset] = string(b.Data)
	var all []*Partition
	for id := uint64(1); id <= 3; id++ {
		pp, _ := c.host(id).Partition(1)
		all = append(all, pp)
	}
	waitQuiesced(t, all...)
	c.stop(lh.NodeID())
	for i := 1; i < 5; i++ {
		b := testBatch(i)
		res, err := c.produce(ctx, 1, b)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	if nh, _ := c.leader(1); nh.NodeID() == lh.NodeID() {
		t.Fatal("stopped node leads")
	}
	c.start(lh.NodeID())
	c.open(1)
	checkReplicasAgree(t, c, 1, acked)
}

func TestSingleNodeGroupQuiesces(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	waitQuiesced(t, p)
	if _, err := p.Produce(testCtx(t), testBatch(0), AcksAll); err != nil {
		t.Fatal(err)
	}
	waitQuiesced(t, p)
}

// The leader's node restarts at once (faster than the liveness timeout)
// and does not reopen the group: the quiesced followers must still wake
// (new incarnation) and elect a leader among themselves.
func TestQuiescedFollowersWakeWhenLeaderNodeRestarts(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	c.open(2) // keeps a group on the restarted node so liveness flows
	lh, p := c.leader(1)
	if _, err := p.Produce(testCtx(t), testBatch(0), AcksAll); err != nil {
		t.Fatal(err)
	}
	var all []*Partition
	for id := uint64(1); id <= 3; id++ {
		pp, _ := c.host(id).Partition(1)
		all = append(all, pp)
	}
	waitQuiesced(t, all...)
	id := lh.NodeID()
	c.stop(id)
	h := c.start(id)
	if _, err := h.OpenPartition(PartitionSpec{GroupID: 2, Dir: "p2", Voters: c.voters()}); err != nil {
		t.Fatal(err)
	}
	nh, np := c.leader(1)
	if nh.NodeID() == id {
		t.Fatal("restarted node leads a group it did not reopen")
	}
	if _, err := np.Produce(testCtx(t), testBatch(1), AcksAll); err != nil {
		t.Fatal(err)
	}
}
