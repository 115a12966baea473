package replication

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func idemBatch(pid int64, epoch, seq int32, records uint32) ProduceBatch {
	b := testBatch(int(seq))
	b.Records, b.ProducerID, b.ProducerEpoch, b.BaseSequence = records, pid, epoch, seq
	return b
}

func TestIdempotentProducer(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	r0, err := p.Produce(ctx, idemBatch(7, 0, 0, 3), AcksAll)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := p.Produce(ctx, idemBatch(7, 0, 3, 2), AcksAll)
	if err != nil {
		t.Fatal(err)
	}
	hw := p.HighWatermark()
	// Retries of remembered batches answer with their original offsets.
	for _, tc := range []struct {
		seq  int32
		recs uint32
		want uint64
	}{{0, 3, r0.BaseOffset}, {3, 2, r1.BaseOffset}} {
		res, err := p.Produce(ctx, idemBatch(7, 0, tc.seq, tc.recs), AcksAll)
		if err != nil || res.BaseOffset != tc.want {
			t.Fatalf("retry seq %d: %v at %d, want %d", tc.seq, err, res.BaseOffset, tc.want)
		}
	}
	if p.HighWatermark() != hw {
		t.Fatalf("retries moved the high watermark %d -> %d", hw, p.HighWatermark())
	}
	if _, err := p.Produce(ctx, idemBatch(7, 0, 9, 1), AcksAll); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap: %v", err)
	}
	if _, err := p.Produce(ctx, idemBatch(7, 1, 4, 1), AcksAll); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch not at 0: %v", err)
	}
	if _, err := p.Produce(ctx, idemBatch(7, 1, 0, 1), AcksAll); err != nil {
		t.Fatalf("new epoch: %v", err)
	}
	if _, err := p.Produce(ctx, idemBatch(7, 0, 5, 1), AcksAll); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("old epoch: %v", err)
	}
	// Another producer is independent.
	if _, err := p.Produce(ctx, idemBatch(8, 0, 0, 1), AcksAll); err != nil {
		t.Fatal(err)
	}
	// Only the last five batches are remembered.
	for s := int32(1); s <= 6; s++ {
		if _, err := p.Produce(ctx, idemBatch(8, 0, s, 1), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Produce(ctx, idemBatch(8, 0, 1, 1), AcksAll); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("batch older than the last five: %v", err)
	}
}

func TestIdempotentStateSurvivesRestartAndSnapshot(t *testing.T) {
	c := newTestClusterWith(t, 1, false, func(cfg *HostConfig) { cfg.SnapshotEntries = 4 })
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	offs := map[int32]uint64{}
	for s := int32(0); s < 10; s++ {
		res, err := p.Produce(ctx, idemBatch(3, 2, s, 1), AcksAll)
		if err != nil {
			t.Fatal(err)
		}
		offs[s] = res.BaseOffset
	}
	c.stop(1)
	c.start(1)
	c.open(1)
	_, p = c.leader(1)
	res, err := p.Produce(ctx, idemBatch(3, 2, 9, 1), AcksAll)
	if err != nil || res.BaseOffset != offs[9] {
		t.Fatalf("retry after restart: %v at %d, want %d", err, res.BaseOffset, offs[9])
	}
	if _, err := p.Produce(ctx, idemBatch(3, 2, 11, 1), AcksAll); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after restart: %v", err)
	}
}

func TestIdempotentRetryOnNewLeader(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	ctx := testCtx(t)
	old, p := c.leader(1)
	res, err := p.Produce(ctx, idemBatch(5, 0, 0, 4), AcksAll)
	if err != nil {
		t.Fatal(err)
	}
	c.stop(old.NodeID())
	for {
		_, np := c.leader(1)
		got, err := np.Produce(ctx, idemBatch(5, 0, 0, 4), AcksAll)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if got.BaseOffset != res.BaseOffset {
			t.Fatalf("retry on new leader at %d, original %d", got.BaseOffset, res.BaseOffset)
		}
		if np.HighWatermark() != 4 {
			t.Fatalf("hw %d after retry, want 4", np.HighWatermark())
		}
		break
	}
}

// A batch that entered the leader's producer view but never the log (its
// producer gave up before it was proposed) must not shadow the real next
// batch: the view is rebuilt from the applied state first.
func TestStaleProducerViewIsRebuilt(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	if _, err := p.Produce(ctx, idemBatch(4, 0, 0, 1), AcksAll); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.mu.producers.record(4, 0, 1, 1, 0, batchMeta{Offset: 99})
	p.mu.viewStale = true
	p.mu.Unlock()
	res, err := p.Produce(ctx, idemBatch(4, 0, 1, 1), AcksAll)
	if err != nil || res.BaseOffset != 1 {
		t.Fatalf("produce after a lost proposal: %v at %d, want offset 1", err, res.BaseOffset)
	}
}

// Producer ids silent for longer than the expiry are forgotten (bounded
// memory), by the leaders' replicated clock; active ones are kept.
func TestIdleProducerIDsExpire(t *testing.T) {
	var mu sync.Mutex
	now := time.UnixMilli(1_000_000_000)
	c := newTestClusterWith(t, 1, false, func(cfg *HostConfig) {
		cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	c.pcfg = PartitionConfig{ProducerIDExpiryMs: 60_000}
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	if _, err := p.Produce(ctx, idemBatch(1, 0, 0, 1), AcksAll); err != nil {
		t.Fatal(err)
	}
	for s := int32(0); s < 10; s++ { // producer 2 stays active
		advance(10 * time.Second)
		if _, err := p.Produce(ctx, idemBatch(2, 0, s, 1), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	p.raftMu.Lock()
	_, has1 := p.raftMu.sm.producers[1]
	_, has2 := p.raftMu.sm.producers[2]
	p.raftMu.Unlock()
	if has1 || !has2 {
		t.Fatalf("after 100s: producer 1 kept=%v (want forgotten), producer 2 kept=%v", has1, has2)
	}
	// A forgotten producer starts afresh.
	if _, err := p.Produce(ctx, idemBatch(1, 0, 7, 1), AcksAll); err != nil {
		t.Fatalf("forgotten producer: %v", err)
	}
}
