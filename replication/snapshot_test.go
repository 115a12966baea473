package replication

import (
	"bytes"
	"testing"
	"time"
)

func TestFollowerBehindLogStartGetsSnapshot(t *testing.T) {
	c := newTestClusterWith(t, 3, false, func(cfg *HostConfig) {
		cfg.Storage.SegmentBytes = 1024
		cfg.SnapshotEntries = 10
		cfg.RetentionCheck = 20 * time.Millisecond
	})
	c.open(1)
	ctx := testCtx(t)
	lh, p := c.leader(1)
	for _, h := range []uint64{1, 2, 3} {
		pp, _ := c.host(h).Partition(1)
		pp.UpdateConfig(PartitionConfig{RetentionBytes: 1})
	}
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
	c.net.HealAll()
	fp, _ := c.host(f).Partition(1)
	waitHW(t, fp, p.HighWatermark())
	if fp.StartOffset() == 0 {
		t.Fatal("follower did not install a snapshot")
	}
	// The follower took the producer state with the snapshot: after a
	// failover to it, a retry is recognized and a gap rejected.
	a, b := readAll(t, p), readAll(t, fp)
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].BaseOffset < b[j].BaseOffset:
			i++
		case a[i].BaseOffset > b[j].BaseOffset:
			j++
		default:
			if !bytes.Equal(a[i].Data, b[j].Data) {
				t.Fatalf("offset %d differs", a[i].BaseOffset)
			}
			i++
			j++
		}
	}
	fp.raftMu.Lock()
	ps := fp.raftMu.sm.producers[1]
	fp.raftMu.Unlock()
	if ps == nil || ps.Batches[len(ps.Batches)-1].LastSeq != 59 {
		t.Fatalf("follower producer state %+v, want last sequence 59", ps)
	}
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
