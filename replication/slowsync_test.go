package replication

import (
	"path/filepath"
	"testing"
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
