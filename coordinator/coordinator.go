package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/replication"
)

// OffsetsTopic is the internal topic holding groups and their offsets.
const OffsetsTopic = "__consumer_offsets"

// Config configures a node's coordinator.
type Config struct {
	// NodeID is this node.
	NodeID uint64
	// Metadata is the node's view of the cluster: topics, and the local
	// replicas of __consumer_offsets.
	Metadata *cluster.Metadata
	// OffsetsPartitions and OffsetsReplicationFactor shape
	// __consumer_offsets when this node creates it (0: one partition per
	// live node; a factor of min(3, nodes)). Fixed once created: the
	// partition count decides which partition a group lives in.
	OffsetsPartitions, OffsetsReplicationFactor int32
	// CheckInterval is how often leadership and sessions are checked
	// (default 100ms).
	CheckInterval time.Duration
	// CheckpointRecords is how many records a __consumer_offsets
	// partition may gather before its live state is rewritten and the
	// older records deleted (default 10000; see checkpoint.go).
	CheckpointRecords int
	Logger            *slog.Logger
	Registerer        prometheus.Registerer
	Now               func() time.Time
}

// Coordinator hosts the consumer groups whose __consumer_offsets
// partition this node leads.
type Coordinator struct {
	cfg    Config
	md     *cluster.Metadata
	logger *slog.Logger

	mu struct {
		sync.Mutex
		shards map[int32]*shard // by partition index: loaded or loading
		closed bool
	}
	createMu sync.Mutex // one creation of __consumer_offsets at a time

	stop    chan struct{}
	ctx     context.Context // canceled by Close: ends loads in progress
	cancel  context.CancelFunc
	wake    chan struct{}
	wg      sync.WaitGroup
	metrics *metrics
}

// New starts a coordinator.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Metadata == nil {
		return nil, errors.New("coordinator: Metadata is required")
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 100 * time.Millisecond
	}
	if cfg.CheckpointRecords <= 0 {
		cfg.CheckpointRecords = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Coordinator{cfg: cfg, md: cfg.Metadata, logger: cfg.Logger.With("component", "coordinator"),
		stop: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.mu.shards = map[int32]*shard{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.metrics = newMetrics(c, cfg.Registerer)
	c.wg.Add(1)
	go c.watch()
	return c, nil
}

// Close stops the coordinator; member sessions end with ErrClosed.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	shards := c.mu.shards
	c.mu.shards = map[int32]*shard{}
	c.mu.Unlock()
	close(c.stop)
	c.cancel()
	c.wg.Wait()
	for _, s := range shards {
		s.unload(ErrClosed)
	}
	c.metrics.unregister()
	return nil
}

// topics is the cluster's user topics with their partition counts.
func (c *Coordinator) topics() map[string]int32 {
	st := c.md.State()
	out := make(map[string]int32, len(st.Topics))
	for name, t := range st.Topics {
		if !cluster.Internal(name) {
			out[name] = int32(len(t.Partitions))
		}
	}
	return out
}

// watch loads the shards this node comes to lead, drops those it stops
// leading, expires sessions, and tells groups about topic changes.
func (c *Coordinator) watch() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.CheckInterval)
	defer tick.Stop()
	var topics map[string]int32
	for {
		changed := c.md.Changed()
		now := c.cfg.Now()
		t := c.topics()
		topicsChanged := !maps.Equal(t, topics)
		topics = t
		c.checkShards(t)
		for _, s := range c.loadedShards() {
			s.tick(now, t, topicsChanged)
		}
		select {
		case <-c.stop:
			return
		case <-tick.C:
		case <-changed:
		case <-c.wake:
		}
	}
}

// checkShards loads and unloads shards to match leadership.
func (c *Coordinator) checkShards(topics map[string]int32) {
	t, ok := c.md.State().Topic(OffsetsTopic)
	if !ok {
		return
	}
	for _, pi := range t.Partitions {
		p, err := c.partition(pi.Index)
		leader := err == nil && p.IsLeader()
		if s := c.shard(pi.Index); s != nil && s.gone() {
			c.dropShard(s, nil) // a write failed: rebuild from the log
		}
		c.mu.Lock()
		s := c.mu.shards[pi.Index]
		if c.mu.closed {
			c.mu.Unlock()
			return
		}
		switch {
		case leader && (s == nil || s.part != p):
			if s != nil {
				delete(c.mu.shards, pi.Index)
			}
			ns := newShard(c, pi.Index, p)
			c.mu.shards[pi.Index] = ns
			// Loading waits for the partition to commit a marker; it runs on
			// its own goroutine so other shards are not held up.
			c.wg.Add(1)
			c.mu.Unlock()
			if s != nil {
				s.unload(&NotCoordinatorError{Leader: p.Leader()})
			}
			go c.load(ns, topics)
		case !leader && s != nil:
			delete(c.mu.shards, pi.Index)
			c.mu.Unlock()
			var hint uint64
			if p != nil {
				hint = p.Leader()
			}
			s.unload(&NotCoordinatorError{Leader: hint})
		default:
			c.mu.Unlock()
		}
	}
}

// load rebuilds a shard's groups; on failure the shard is forgotten and
// the watch loop tries again while this node leads.
func (c *Coordinator) load(s *shard, topics map[string]int32) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := s.load(ctx, topics, c.cfg.Now()); err != nil {
		c.logger.Warn("loading groups failed; retrying", "partition", s.index, "err", err)
		c.dropShard(s, &NotCoordinatorError{Leader: s.part.Leader()})
	}
}

// dropShard forgets a shard (unloading it with cause unless it is gone
// already); the watch loop reloads it from the log while this node leads.
func (c *Coordinator) dropShard(s *shard, cause error) {
	c.mu.Lock()
	if c.mu.shards[s.index] == s {
		delete(c.mu.shards, s.index)
	}
	c.mu.Unlock()
	if cause != nil {
		s.unload(cause)
	}
	c.poke()
}

// poke wakes the watch loop.
func (c *Coordinator) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Coordinator) shard(index int32) *shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.shards[index]
}

func (c *Coordinator) loadedShards() []*shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*shard, 0, len(c.mu.shards))
	for _, s := range c.mu.shards {
		out = append(out, s)
	}
	return out
}

func (c *Coordinator) partition(index int32) (*replication.Partition, error) {
	p, _, err := c.md.Partition(OffsetsTopic, index)
	return p, err
}

// ensureTopic creates __consumer_offsets when it does not exist yet (on
// the controller) and returns its partition count.
func (c *Coordinator) ensureTopic(ctx context.Context) (int32, error) {
	if t, ok := c.md.State().Topic(OffsetsTopic); ok {
		return int32(len(t.Partitions)), nil
	}
	c.createMu.Lock()
	defer c.createMu.Unlock()
	t, err := c.md.CreateInternalTopic(ctx, cluster.TopicSpec{Name: OffsetsTopic,
		Partitions: c.cfg.OffsetsPartitions, ReplicationFactor: c.cfg.OffsetsReplicationFactor})
	if err != nil {
		var nc *cluster.NotControllerError
		if errors.As(err, &nc) {
			return 0, &NotCoordinatorError{Leader: nc.Leader}
		}
		return 0, err
	}
	c.poke()
	return int32(len(t.Partitions)), nil
}

// PartitionFor returns the __consumer_offsets partition of a group.
func PartitionFor(group string, partitions int32) int32 {
	return batch.KeyPartition([]byte(group), partitions)
}

// shardFor returns the loaded shard coordinating group, or
// *NotCoordinatorError (with the leader when known) or ErrLoading.
func (c *Coordinator) shardFor(ctx context.Context, group string) (*shard, error) {
	if group == "" {
		return nil, invalid("group id is required")
	}
	n, err := c.ensureTopic(ctx)
	if err != nil {
		return nil, err
	}
	idx := PartitionFor(group, n)
	c.mu.Lock()
	closed := c.mu.closed
	s := c.mu.shards[idx]
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if s != nil && s.ready() {
		return s, nil
	}
	p, err := c.partition(idx)
	if err != nil {
		var nr *cluster.NotReplicaError
		if errors.As(err, &nr) && len(nr.Replicas) > 0 {
			return nil, &NotCoordinatorError{Group: group, Leader: nr.Replicas[0]}
		}
		return nil, &NotCoordinatorError{Group: group}
	}
	if p.IsLeader() {
		c.poke()
		return nil, ErrLoading
	}
	return nil, &NotCoordinatorError{Group: group, Leader: p.Leader()}
}

// Coordinator returns the node coordinating group (0 = unknown).
func (c *Coordinator) Coordinator(group string) uint64 {
	t, ok := c.md.State().Topic(OffsetsTopic)
	if !ok || len(t.Partitions) == 0 {
		return 0
	}
	p, err := c.partition(PartitionFor(group, int32(len(t.Partitions))))
	if err != nil {
		return 0
	}
	return p.Leader()
}

// waitShard is shardFor that waits out loading (bounded by ctx).
func (c *Coordinator) waitShard(ctx context.Context, group string) (*shard, error) {
	for {
		s, err := c.shardFor(ctx, group)
		if !errors.Is(err, ErrLoading) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-c.stop:
			return nil, ErrClosed
		case <-time.After(10 * time.Millisecond):
		}
	}
}
