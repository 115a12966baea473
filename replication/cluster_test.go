package replication

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluicehq/sluice/storage"
)

// checkReplicasAgree compares every running replica's readable log with
// the acknowledged batches (offset -> data).
func checkReplicasAgree(t *testing.T, c *testCluster, group uint64, acked map[uint64]string) {
	t.Helper()
	var want uint64
	for off := range acked {
		want = max(want, off+1)
	}
	c.mu.Lock()
	hosts := make([]*Host, 0, len(c.hosts))
	for _, h := range c.hosts {
		hosts = append(hosts, h)
	}
	c.mu.Unlock()
	var ref []storage.Batch
	var refNode uint64
	for _, h := range hosts {
		p, ok := h.Partition(group)
		if !ok {
			continue
		}
		waitHW(t, p, want)
		got := readAll(t, p)
		byOff := map[uint64]string{}
		for _, b := range got {
			byOff[b.BaseOffset] = string(b.Data)
		}
		start := p.StartOffset() // after reading: retention may have run meanwhile
		for off, data := range acked {
			if off < start {
				continue // removed by retention
			}
			if byOff[off] != data {
				t.Fatalf("node %d: acknowledged %q at offset %d, read %q", h.NodeID(), data, off, byOff[off])
			}
		}
		if ref == nil {
			ref, refNode = got, h.NodeID()
			continue
		}
		// Compare where both still hold the log (retention may differ).
		i, j := 0, 0
		for i < len(ref) && j < len(got) {
			switch {
			case ref[i].NextOffset() <= got[j].BaseOffset:
				i++
			case got[j].NextOffset() <= ref[i].BaseOffset:
				j++
			default:
				if got[j].BaseOffset != ref[i].BaseOffset || !bytes.Equal(got[j].Data, ref[i].Data) {
					t.Fatalf("node %d: %q at %d, node %d has %q at %d", h.NodeID(),
						got[j].Data, got[j].BaseOffset, refNode, ref[i].Data, ref[i].BaseOffset)
				}
				i++
				j++
			}
		}
	}
}

func TestThreeNodeReplicates(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	lh, p := c.leader(1)
	ctx := testCtx(t)
	acked := map[uint64]string{}
	for i := 0; i < 30; i++ {
		b := testBatch(i)
		res, err := p.Produce(ctx, b, AcksAll)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	checkReplicasAgree(t, c, 1, acked)

	// A follower refuses with a leader hint.
	for id := uint64(1); id <= 3; id++ {
		if id == lh.NodeID() {
			continue
		}
		fp, _ := c.host(id).Partition(1)
		_, err := fp.Produce(ctx, testBatch(99), AcksAll)
		var nle *NotLeaderError
		if !errors.As(err, &nle) || nle.Leader != lh.NodeID() {
			t.Fatalf("produce on follower %d: %v, want leader hint %d", id, err, lh.NodeID())
		}
	}
}

func TestLeaderFailoverKeepsAcknowledged(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	acked := map[uint64]string{}
	n := 0
	produce := func(k int) {
		for i := 0; i < k; i++ {
			b := testBatch(n)
			n++
			res, err := c.produce(ctx, 1, b)
			if err != nil {
				t.Fatal(err)
			}
			acked[res.BaseOffset] = string(b.Data)
		}
	}
	for round := 0; round < 3; round++ {
		produce(20)
		old, _ := c.leader(1)
		id := old.NodeID()
		c.stop(id)
		produce(20)
		if h, _ := c.leader(1); h.NodeID() == id {
			t.Fatal("stopped node still leads")
		}
		c.start(id)
		c.open(1)
		checkReplicasAgree(t, c, 1, acked)
	}
}

func TestCutOffFollowerCatchesUp(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	lh, p := c.leader(1)
	var f uint64
	for id := uint64(1); id <= 3; id++ {
		if id != lh.NodeID() {
			f = id
			break
		}
	}
	c.net.Isolate(f, 1, 2, 3)
	acked := map[uint64]string{}
	for i := 0; i < 40; i++ {
		b := testBatch(i)
		res, err := p.Produce(ctx, b, AcksAll)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	fp, _ := c.host(f).Partition(1)
	if fp.HighWatermark() >= p.HighWatermark() {
		t.Fatalf("isolated follower at hw %d, leader %d", fp.HighWatermark(), p.HighWatermark())
	}
	c.net.HealAll()
	checkReplicasAgree(t, c, 1, acked)
}

func TestIsolatedLeaderLosesLeadership(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	old, op := c.leader(1)
	acked := map[uint64]string{}
	for i := 0; i < 10; i++ {
		b := testBatch(i)
		res, err := op.Produce(ctx, b, AcksAll)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	c.net.Isolate(old.NodeID(), 1, 2, 3)
	// The majority elects a new leader and keeps accepting writes; the
	// old leader steps down (check quorum) and cannot acknowledge.
	var nh *Host
	var np *Partition
	for {
		nh, np = c.leader(1)
		if nh.NodeID() != old.NodeID() {
			break
		}
	}
	for i := 10; i < 30; i++ {
		b := testBatch(i)
		res, err := np.Produce(ctx, b, AcksAll)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	c.net.HealAll()
	checkReplicasAgree(t, c, 1, acked)
	if op.IsLeader() && op.Leader() == old.NodeID() && np.IsLeader() {
		t.Fatal("two leaders after heal")
	}
}

func TestLossyLinks(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	for a := uint64(1); a <= 3; a++ {
		for b := a + 1; b <= 3; b++ {
			c.net.SetDrop(a, b, 0.2)
		}
	}
	acked := map[uint64]string{}
	for i := 0; i < 30; i++ {
		b := testBatch(i)
		res, err := c.produce(ctx, 1, b)
		if err != nil {
			t.Fatal(err)
		}
		acked[res.BaseOffset] = string(b.Data)
	}
	c.net.HealAll()
	checkReplicasAgree(t, c, 1, acked)
}
