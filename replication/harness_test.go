package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/storage"
	"github.com/sluicehq/sluice/storage/faultfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCluster is N hosts on a MemNetwork, each with its own directory.
type testCluster struct {
	t     testing.TB
	net   *MemNetwork
	hosts map[uint64]*Host
	dirs  map[uint64]string
	disk  *memDisk // nil = real storage
	fss   map[uint64]*faultfs.FS
	tweak func(*HostConfig)
	pcfg  PartitionConfig // config of partitions opened by open
	mu    sync.Mutex
}

func newTestCluster(t testing.TB, n int, mem bool) *testCluster {
	return newTestClusterWith(t, n, mem, nil)
}

func newTestClusterWith(t testing.TB, n int, mem bool, tweak func(*HostConfig)) *testCluster {
	c := &testCluster{t: t, hosts: map[uint64]*Host{}, dirs: map[uint64]string{}, tweak: tweak}
	if n > 1 {
		c.net = NewMemNetwork()
	}
	if mem {
		c.disk = newMemDisk()
	}
	for id := uint64(1); id <= uint64(n); id++ {
		c.dirs[id] = t.TempDir()
		c.start(id)
	}
	t.Cleanup(c.close)
	return c
}

func (c *testCluster) start(id uint64) *Host {
	cfg := HostConfig{NodeID: id, DataDir: c.dirs[id], TickInterval: 10 * time.Millisecond, Workers: 4}
	if c.net != nil {
		cfg.Transport = c.net.Transport(id)
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	if fs := c.fss[id]; fs != nil {
		cfg.Storage.FS = fs
	}
	h, err := NewHost(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.disk != nil {
		h.openLog = c.disk.open
	}
	c.mu.Lock()
	c.hosts[id] = h
	c.mu.Unlock()
	return h
}

func (c *testCluster) stop(id uint64) {
	c.mu.Lock()
	h := c.hosts[id]
	delete(c.hosts, id)
	c.mu.Unlock()
	if h != nil {
		if err := h.Close(); err != nil {
			c.t.Errorf("close host %d: %v", id, err)
		}
	}
}

// newCrashCluster gives every node an in-memory filesystem (faultfs) that
// can crash, dropping everything not yet durable.
func newCrashCluster(t testing.TB, n int, tweak func(*HostConfig)) *testCluster {
	c := &testCluster{t: t, hosts: map[uint64]*Host{}, dirs: map[uint64]string{}, tweak: tweak,
		fss: map[uint64]*faultfs.FS{}}
	if n > 1 {
		c.net = NewMemNetwork()
	}
	for id := uint64(1); id <= uint64(n); id++ {
		c.dirs[id] = fmt.Sprintf("/node%d", id)
		c.fss[id] = faultfs.New()
		c.start(id)
	}
	t.Cleanup(c.close)
	return c
}

// crash stops node id as a power cut would: the node restarts (restart)
// on what its filesystem had made durable at the moment of the call.
func (c *testCluster) crash(id uint64) {
	c.mu.Lock()
	crashed := c.fss[id].Crash()
	c.mu.Unlock()
	c.stop(id)
	c.mu.Lock()
	c.fss[id] = crashed
	c.mu.Unlock()
}

func (c *testCluster) close() {
	for id := range c.dirs {
		c.stop(id)
	}
	if c.net != nil {
		c.net.Close()
	}
}

func (c *testCluster) voters() []uint64 {
	var v []uint64
	for id := uint64(1); id <= uint64(len(c.dirs)); id++ {
		v = append(v, id)
	}
	return v
}

// open opens group on every running host.
func (c *testCluster) open(group uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		spec := PartitionSpec{GroupID: group, Dir: fmt.Sprintf("p%d", group), Voters: c.voters(), Config: c.pcfg}
		if _, err := h.OpenPartition(spec); err != nil {
			c.t.Fatal(err)
		}
	}
}

// leader waits for a ready leader of group among the running hosts.
func (c *testCluster) leader(group uint64) (*Host, *Partition) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, h := range c.hosts {
			if p, ok := h.Partition(group); ok {
				p.mu.Lock()
				ready := p.mu.ready
				p.mu.Unlock()
				if ready {
					c.mu.Unlock()
					return h, p
				}
			}
		}
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no leader for group %d", group)
	return nil, nil
}

// leaderOrNil returns a ready leader of group now, or nils.
func (c *testCluster) leaderOrNil(group uint64) (*Host, *Partition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		if p, ok := h.Partition(group); ok {
			p.mu.Lock()
			ready := p.mu.ready
			p.mu.Unlock()
			if ready {
				return h, p
			}
		}
	}
	return nil, nil
}

func (c *testCluster) host(id uint64) *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[id]
}

func testBatch(i int) ProduceBatch {
	data := []byte(fmt.Sprintf("batch-%06d", i))
	return ProduceBatch{Data: data, Records: 1, MaxTimestamp: int64(1000 + i), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
}

// produceRetry produces to whichever node leads, retrying not-leader and
// unknown outcomes (use only where duplicates are acceptable or checked).
func (c *testCluster) produce(ctx context.Context, group uint64, b ProduceBatch) (ProduceResult, error) {
	for {
		_, p := c.leader(group)
		res, err := p.Produce(ctx, b, AcksAll)
		if err == nil || ctx.Err() != nil {
			return res, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitHW waits until p's high watermark reaches at least hw.
func waitHW(t testing.TB, p *Partition, hw uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		ch := p.Changed()
		if p.HighWatermark() >= hw {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("group %d: high watermark %d, want >= %d", p.id, p.HighWatermark(), hw)
		}
	}
}

// readAll reads [start, hw) of p.
func readAll(t testing.TB, p *Partition) []storage.Batch {
	t.Helper()
	var out []storage.Batch
	off := p.StartOffset()
	for off < p.HighWatermark() {
		bs, err := p.Read(off, 1<<20)
		var oor *storage.OffsetOutOfRangeError
		if errors.As(err, &oor) && oor.Start > off {
			off = oor.Start // retention moved the start meanwhile
			continue
		}
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(bs) == 0 {
			t.Fatalf("read at %d below hw %d returned nothing", off, p.HighWatermark())
		}
		out = append(out, bs...)
		off = bs[len(bs)-1].NextOffset()
	}
	return out
}
