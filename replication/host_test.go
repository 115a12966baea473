package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/storage"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSingleNodeProduceRead(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	var want []string
	for i := 0; i < 20; i++ {
		b := testBatch(i)
		b.Records = uint32(i%3 + 1)
		res, err := p.Produce(ctx, b, AcksAll)
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseOffset != p.HighWatermark()-uint64(b.Records) {
			t.Fatalf("batch %d at %d, hw %d", i, res.BaseOffset, p.HighWatermark())
		}
		if res.LogAppendTime != -1 {
			t.Fatalf("log append time %d for create-time topic", res.LogAppendTime)
		}
		want = append(want, string(b.Data))
	}
	bs := readAll(t, p)
	if len(bs) != len(want) {
		t.Fatalf("read %d batches, want %d", len(bs), len(want))
	}
	var next uint64
	for i, b := range bs {
		if string(b.Data) != want[i] || b.BaseOffset != next {
			t.Fatalf("batch %d: %q at %d, want %q at %d", i, b.Data, b.BaseOffset, want[i], next)
		}
		next = b.NextOffset()
	}
	// At the high watermark: nothing; past it: out of range.
	if bs, err := p.Read(p.HighWatermark(), 1<<20); err != nil || len(bs) != 0 {
		t.Fatalf("read at hw: %v %v", bs, err)
	}
	var oor *storage.OffsetOutOfRangeError
	if _, err := p.Read(p.HighWatermark()+1, 1<<20); !errors.As(err, &oor) {
		t.Fatalf("read past hw: %v", err)
	}
	if off, ok, err := p.OffsetForTime(1005); err != nil || !ok || off != bs[5].BaseOffset {
		t.Fatalf("offset for time: %d %v %v, want %d", off, ok, err, bs[5].BaseOffset)
	}
}

func TestAcksLevels(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	if _, err := p.Produce(ctx, testBatch(0), AcksNone); err != nil {
		t.Fatal(err)
	}
	res, err := p.Produce(ctx, testBatch(1), AcksLeader)
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != 1 {
		t.Fatalf("acks=1 offset %d, want 1", res.BaseOffset)
	}
	waitHW(t, p, 2)
	if _, err := p.Produce(ctx, ProduceBatch{ProducerID: -1}, AcksAll); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("empty batch: %v", err)
	}
}

func TestLogAppendTime(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	p.UpdateConfig(PartitionConfig{LogAppendTime: true})
	before := time.Now().UnixMilli()
	res, err := p.Produce(testCtx(t), testBatch(0), AcksAll)
	if err != nil {
		t.Fatal(err)
	}
	if res.LogAppendTime < before {
		t.Fatalf("log append time %d before %d", res.LogAppendTime, before)
	}
	bs := readAll(t, p)
	if bs[0].MaxTimestamp != res.LogAppendTime {
		t.Fatalf("stored timestamp %d, want %d", bs[0].MaxTimestamp, res.LogAppendTime)
	}
}

func TestChangedWakesOnProduce(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	ch := p.Changed()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ch
	}()
	if _, err := p.Produce(testCtx(t), testBatch(0), AcksAll); err != nil {
		t.Fatal(err)
	}
	<-done
}

func TestRestartRecovery(t *testing.T) {
	c := newTestCluster(t, 1, false)
	for g := uint64(1); g <= 3; g++ {
		c.open(g)
	}
	ctx := testCtx(t)
	hws := map[uint64]uint64{}
	for g := uint64(1); g <= 3; g++ {
		_, p := c.leader(g)
		for i := 0; i < 50; i++ {
			if _, err := p.Produce(ctx, testBatch(i), AcksAll); err != nil {
				t.Fatal(err)
			}
		}
		hws[g] = p.HighWatermark()
	}
	c.stop(1)
	c.start(1)
	for g := uint64(1); g <= 3; g++ {
		c.open(g)
		_, p := c.leader(g)
		waitHW(t, p, hws[g])
		bs := readAll(t, p)
		if uint64(len(bs)) != hws[g] {
			t.Fatalf("group %d: %d batches after restart, want %d", g, len(bs), hws[g])
		}
		for i, b := range bs {
			if want := fmt.Sprintf("batch-%06d", i); string(b.Data) != want {
				t.Fatalf("group %d offset %d: %q, want %q", g, b.BaseOffset, b.Data, want)
			}
		}
		// New writes continue the offsets.
		res, err := p.Produce(ctx, testBatch(50), AcksAll)
		if err != nil || res.BaseOffset != hws[g] {
			t.Fatalf("produce after restart: %v at %d, want %d", err, res.BaseOffset, hws[g])
		}
	}
}

func TestConcurrentProduceManyPartitions(t *testing.T) {
	c := newTestCluster(t, 1, false)
	const groups, producers, perProducer = 8, 4, 25
	for g := uint64(1); g <= groups; g++ {
		c.open(g)
	}
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, groups*producers)
	offsets := make([]map[uint64]string, groups+1)
	var mu sync.Mutex
	for g := uint64(1); g <= groups; g++ {
		offsets[g] = map[uint64]string{}
		_, p := c.leader(g)
		for w := 0; w < producers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perProducer; i++ {
					b := testBatch(w*1000 + i)
					res, err := p.Produce(ctx, b, AcksAll)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if prev, dup := offsets[g][res.BaseOffset]; dup {
						errs <- fmt.Errorf("offset %d given to %q and %q", res.BaseOffset, prev, b.Data)
					}
					offsets[g][res.BaseOffset] = string(b.Data)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := uint64(1); g <= groups; g++ {
		_, p := c.leader(g)
		bs := readAll(t, p)
		if len(bs) != producers*perProducer {
			t.Fatalf("group %d: %d batches, want %d", g, len(bs), producers*perProducer)
		}
		for _, b := range bs {
			if offsets[g][b.BaseOffset] != string(b.Data) {
				t.Fatalf("group %d offset %d: read %q, acknowledged %q", g, b.BaseOffset, b.Data, offsets[g][b.BaseOffset])
			}
		}
	}
}

func TestRemovePartition(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	h, p := c.leader(1)
	if err := h.RemovePartition(1); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Partition(1); ok {
		t.Fatal("partition still open")
	}
	if _, err := p.Produce(testCtx(t), testBatch(0), AcksAll); !errors.Is(err, ErrClosed) {
		t.Fatalf("produce on removed partition: %v", err)
	}
}
