package replication

import (
	"testing"
)

// Batches proposed one after the other without waiting take offsets in
// the order they were proposed, and all of them are durable on a
// majority when their Wait returns.
func TestProposePipelinesInOrder(t *testing.T) {
	c := newTestCluster(t, 3, true)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	const n = 300
	futures := make([]*PendingProduce, 0, n)
	for i := range n {
		b := testBatch(i)
		b.Records = uint32(i%4 + 1)
		f, err := p.Propose(ctx, b, AcksAll)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	var next uint64
	for i, f := range futures {
		res, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if res.BaseOffset != next {
			t.Fatalf("batch %d at offset %d, want %d", i, res.BaseOffset, next)
		}
		next += uint64(i%4 + 1)
	}
	bs := readAll(t, p)
	if len(bs) != n {
		t.Fatalf("read %d batches, want %d", len(bs), n)
	}
	for i, b := range bs {
		if string(b.Data) != string(testBatch(i).Data) {
			t.Fatalf("batch %d holds %q", i, b.Data)
		}
	}
}
