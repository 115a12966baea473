package replication

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// A partition whose fsync hangs must not hold up the others: appends and
// syncs of other partitions go on, and its own producers wait (they are
// never answered before the sync returns).
func TestSlowSyncDoesNotStallOtherPartitions(t *testing.T) {
	c := newTestCluster(t, 1, true)
	c.open(1)
	c.open(2)
	_, p1 := c.leader(1)
	_, p2 := c.leader(2)
	ctx := testCtx(t)

	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	c.disk.mu.Lock()
	slow := c.disk.logs[filepath.Join(c.dirs[1], "partitions", "p1")]
	c.disk.mu.Unlock()
	slow.mu.Lock()
	slow.syncHook = func() {
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-release
	}
	slow.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		_, err := p1.Produce(ctx, testBatch(0), AcksAll)
		done <- err
	}()
	<-blocked
	for i := 0; i < 20; i++ {
		if _, err := p2.Produce(ctx, testBatch(i), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("produce answered before its sync returned: %v", err)
	default:
	}
	if p1.HighWatermark() != 0 {
		t.Fatalf("high watermark %d moved before the sync", p1.HighWatermark())
	}
	slow.mu.Lock()
	slow.syncHook = nil
	slow.mu.Unlock()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// While the log cannot make entries durable, the leader's uncommitted
// tail fills up and further writes are refused (bounded memory) as a
// definite, retriable failure.
func TestUncommittedTailIsBounded(t *testing.T) {
	c := newTestCluster(t, 1, true)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	release := make(chan struct{})
	c.disk.mu.Lock()
	slow := c.disk.logs[filepath.Join(c.dirs[1], "partitions", "p1")]
	c.disk.mu.Unlock()
	slow.mu.Lock()
	slow.syncHook = func() { <-release }
	slow.mu.Unlock()
	big := ProduceBatch{Data: make([]byte, 1<<20), Records: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	throttled := false
	for i := 0; i < 4*maxUncommittedBytes>>20 && !throttled; i++ {
		_, err := p.Produce(ctx, big, AcksNone)
		switch {
		case errors.Is(err, ErrThrottled):
			throttled = true
		case err != nil:
			t.Fatal(err)
		}
	}
	slow.mu.Lock()
	slow.syncHook = nil
	slow.mu.Unlock()
	close(release)
	if !throttled {
		t.Fatal("uncommitted tail grew without bound")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.Produce(ctx, testBatch(0), AcksAll)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrThrottled) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
