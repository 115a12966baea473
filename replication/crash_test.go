package replication

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// ackLog records acknowledged batches. A crash is a point in time: acks
// that a crashed host returns after that point are not counted (a real
// machine could not have sent them).
type ackLog struct {
	mu     sync.Mutex
	zombie map[*Host]bool
	acked  map[uint64]map[uint64]string // group -> offset -> data
}

func newAckLog() *ackLog {
	return &ackLog{zombie: map[*Host]bool{}, acked: map[uint64]map[uint64]string{}}
}

func (a *ackLog) record(h *Host, group, off uint64, data string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.zombie[h] {
		return nil
	}
	m := a.acked[group]
	if m == nil {
		m = map[uint64]string{}
		a.acked[group] = m
	}
	if prev, ok := m[off]; ok && prev != data {
		return fmt.Errorf("group %d offset %d acknowledged for %q and %q", group, off, prev, data)
	}
	m[off] = data
	return nil
}

// crashNode cuts node id off, takes its durable state at that instant and
// stops it; restart brings it back on that state.
func (a *ackLog) crashNode(c *testCluster, id uint64) {
	h := c.host(id)
	a.mu.Lock()
	if c.net != nil {
		c.net.Isolate(id, c.voters()...)
	}
	a.zombie[h] = true
	c.mu.Lock()
	crashed := c.fss[id].Crash()
	c.mu.Unlock()
	a.mu.Unlock()
	c.stop(id)
	c.mu.Lock()
	c.fss[id] = crashed
	c.mu.Unlock()
}

func (a *ackLog) restartNode(c *testCluster, id uint64, groups int) {
	c.start(id)
	for g := 1; g <= groups; g++ {
		c.open(uint64(g))
	}
	if c.net != nil {
		for _, o := range c.voters() {
			if o != id {
				c.net.Heal(id, o)
			}
		}
	}
}

func (a *ackLog) check(t *testing.T, c *testCluster, groups int) {
	t.Helper()
	a.mu.Lock()
	acked := a.acked
	a.mu.Unlock()
	for g := 1; g <= groups; g++ {
		checkReplicasAgree(t, c, uint64(g), acked[uint64(g)])
	}
}

// produceLoop produces until ctx ends, recording acknowledgements.
func produceLoop(ctx context.Context, t *testing.T, c *testCluster, a *ackLog, group uint64, worker int, errs chan<- error) {
	for i := 0; ctx.Err() == nil; i++ {
		h, p := c.leaderOrNil(group)
		if p == nil {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		b := testBatch(worker*1_000_000 + i)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res, err := p.Produce(pctx, b, AcksAll)
		cancel()
		if err != nil {
			continue // unknown outcomes may or may not be in the log; not counted
		}
		if err := a.record(h, group, res.BaseOffset, string(b.Data)); err != nil {
			errs <- err
			return
		}
	}
}

// idemProduceLoop is an idempotent producer (id pid): it retries a batch
// with the same sequence until it is acknowledged, so the log must hold
// every one of its batches exactly once.
func idemProduceLoop(ctx context.Context, c *testCluster, a *ackLog, group uint64, pid int64, errs chan<- error) {
	for seq := int32(0); ctx.Err() == nil; {
		h, p := c.leaderOrNil(group)
		if p == nil {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		b := testBatch(int(pid)*1_000_000 + int(seq))
		b.ProducerID, b.ProducerEpoch, b.BaseSequence = pid, 0, seq
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res, err := p.Produce(pctx, b, AcksAll)
		cancel()
		switch {
		case err == nil:
			if err := a.record(h, group, res.BaseOffset, string(b.Data)); err != nil {
				errs <- err
				return
			}
			seq++
		case errors.Is(err, ErrOutOfOrderSequence), errors.Is(err, ErrProducerFenced):
			errs <- fmt.Errorf("group %d producer %d seq %d: %w", group, pid, seq, err)
			return
		}
	}
}

// checkNoDuplicates fails if a batch of an idempotent producer (ids >=
// 100) appears twice in the group's log.
func checkNoDuplicates(t *testing.T, c *testCluster, group uint64) {
	t.Helper()
	_, p := c.leader(group)
	seen := map[string]uint64{}
	for _, b := range readAll(t, p) {
		var n int
		if _, err := fmt.Sscanf(string(b.Data), "batch-%d", &n); err != nil || n < 100_000_000 {
			continue
		}
		if prev, dup := seen[string(b.Data)]; dup {
			t.Fatalf("group %d: idempotent batch %q at offsets %d and %d", group, b.Data, prev, b.BaseOffset)
		}
		seen[string(b.Data)] = b.BaseOffset
	}
	if len(seen) == 0 {
		t.Fatalf("group %d: no idempotent batch written", group)
	}
}

func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	const groups = 3
	c := newCrashCluster(t, 1, nil)
	for g := uint64(1); g <= groups; g++ {
		c.open(g)
	}
	a := newAckLog()
	for round := 0; round < 4; round++ {
		ctx, cancel := context.WithCancel(testCtx(t))
		errs := make(chan error, 16)
		var wg sync.WaitGroup
		for g := uint64(1); g <= groups; g++ {
			for w := 0; w < 3; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					produceLoop(ctx, t, c, a, g, round*10+w, errs)
				}()
			}
		}
		// Crash while the producers write: once every group has a
		// leader again (a restarted node elects first; on a loaded
		// machine that can take longer than the writing window).
		for g := uint64(1); g <= groups; g++ {
			c.leader(g)
		}
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
		a.crashNode(c, 1)
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		a.restartNode(c, 1, groups)
		a.check(t, c, groups)
	}
	total := 0
	for _, m := range a.acked {
		total += len(m)
	}
	if total == 0 {
		t.Fatal("nothing was acknowledged")
	}
}

// TestChaosThreeNodes runs producers against three nodes while links are
// cut, made lossy and slow, and nodes crash and restart; at the end every
// acknowledged batch must be on every replica at its acknowledged offset
// and all replicas must agree.
func TestChaosThreeNodes(t *testing.T) { chaos(t, nil, PartitionConfig{}) }

// TestChaosThreeNodesWithRetention also snapshots often and deletes old
// segments, so restarted and cut-off replicas catch up through snapshots.
func TestChaosThreeNodesWithRetention(t *testing.T) {
	chaos(t, func(cfg *HostConfig) {
		cfg.SnapshotEntries = 50
		cfg.RetentionCheck = 20 * time.Millisecond
		cfg.Storage.SegmentBytes = 2048
	}, PartitionConfig{RetentionBytes: 8 << 10})
}

func chaos(t *testing.T, tweak func(*HostConfig), pcfg PartitionConfig) {
	if testing.Short() {
		t.Skip("chaos test")
	}
	const groups = 4
	c := newCrashCluster(t, 3, tweak)
	c.pcfg = pcfg
	for g := uint64(1); g <= groups; g++ {
		c.open(g)
	}
	a := newAckLog()
	ctx, cancel := context.WithCancel(testCtx(t))
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for g := uint64(1); g <= groups; g++ {
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				produceLoop(ctx, t, c, a, g, int(g)*10+w, errs)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			idemProduceLoop(ctx, c, a, g, 100+int64(g), errs)
		}()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	down := uint64(0)
	for step := 0; step < 60; step++ {
		time.Sleep(time.Duration(20+rng.IntN(60)) * time.Millisecond)
		x, y := uint64(1+rng.IntN(3)), uint64(1+rng.IntN(3))
		switch op := rng.IntN(6); {
		case op == 0 && down == 0:
			down = x
			a.crashNode(c, x)
		case op == 1 && down != 0:
			a.restartNode(c, down, groups)
			down = 0
		case op == 2 && x != y:
			c.net.Cut(x, y)
		case op == 3 && x != y:
			c.net.SetDrop(x, y, 0.3)
		case op == 4 && x != y:
			c.net.SetDelay(x, y, 5*time.Millisecond)
		default:
			c.net.HealAll()
			if down != 0 {
				c.net.Isolate(down, c.voters()...)
			}
		}
	}
	if down != 0 {
		a.restartNode(c, down, groups)
	}
	c.net.HealAll()
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a.check(t, c, groups)
	for g := uint64(1); g <= groups; g++ {
		checkNoDuplicates(t, c, g)
	}
	total := 0
	for _, m := range a.acked {
		total += len(m)
	}
	installs := 0.0
	for id := uint64(1); id <= 3; id++ {
		var m dto.Metric
		if err := c.host(id).metrics.snapshots.WithLabelValues("install").Write(&m); err == nil {
			installs += m.GetCounter().GetValue()
		}
	}
	t.Logf("%d acknowledged batches checked; %v snapshots installed since the last restarts", total, installs)
	if total == 0 {
		t.Fatal("nothing was acknowledged")
	}
}
