package replication

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/storage"
)

// HostConfig configures the multi-Raft host of one node.
type HostConfig struct {
	// NodeID is this node's Raft id; it must be non-zero.
	NodeID uint64
	// DataDir holds the partitions (DataDir/partitions/<spec.Dir>).
	DataDir string
	// Transport carries Raft messages to other nodes; nil = single node
	// (groups whose only voter is NodeID need no transport).
	Transport Transport
	// TickInterval is the Raft logical clock period (default 100ms).
	// Elections time out after ElectionTicks ticks, heartbeats every
	// HeartbeatTicks ticks.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks (defaults 10 and 2: leaders
	// heartbeat every 200ms, followers campaign after 1-2s of silence).
	ElectionTicks, HeartbeatTicks int
	// Workers is the size of the scheduler's worker pool (default
	// 2*GOMAXPROCS, at least 4).
	Workers int
	// SyncWorkers bounds concurrent log syncs (default 64). Syncs of many
	// partitions issued together merge into one group commit.
	SyncWorkers int
	// SnapshotEntries: take a partition snapshot when this many entries
	// were applied since the last one (default 10000).
	SnapshotEntries uint64
	// RetentionCheck is how often retention runs per partition (default 30s).
	RetentionCheck time.Duration
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	// Storage are the options every partition log opens with; the host
	// sets Syncer (shared SyncGroup) when nil and SegmentBytes per
	// partition config.
	Storage storage.Options
	// Now is the clock for LogAppendTime (default time.Now).
	Now func() time.Time
}

func (c *HostConfig) validate() error {
	if c.NodeID == 0 {
		return errors.New("replication: NodeID must be non-zero")
	}
	if c.DataDir == "" {
		return errors.New("replication: DataDir is required")
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.HeartbeatTicks <= 0 {
		c.HeartbeatTicks = 2
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return errors.New("replication: ElectionTicks must exceed HeartbeatTicks")
	}
	if c.Workers <= 0 {
		c.Workers = defaultWorkers()
	}
	if c.SyncWorkers <= 0 {
		c.SyncWorkers = 64
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = 10000
	}
	if c.RetentionCheck <= 0 {
		c.RetentionCheck = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// PartitionSpec names a partition replica hosted by this node.
type PartitionSpec struct {
	// GroupID is the Raft group id, unique in the cluster and non-zero.
	GroupID uint64
	// Dir is relative to DataDir/partitions.
	Dir string
	// Voters are the initial voters (node ids) when the group is created;
	// every initial replica must be given the same list, in the same
	// order. A recovered replica uses its persisted configuration. A
	// replica whose node is not among Voters (or with no Voters) joins an
	// existing group: it waits, empty, until the leader adds it with
	// ChangeReplicas and sends it the log or a snapshot.
	//
	// Never list a replica that is being added to a running group (a
	// reassignment) among its own Voters, or set Join: it would create a
	// second, diverging configuration at the start of its log.
	Voters []uint64
	// Join opens the replica as a new member of a running group even when
	// Voters lists this node: it never bootstraps.
	Join   bool
	Config PartitionConfig
}

// PartitionConfig is the per-topic configuration a partition applies.
type PartitionConfig struct {
	RetentionMs    int64 // <= 0: keep forever
	RetentionBytes int64 // <= 0: no size limit
	SegmentBytes   int64 // 0: the host's storage default
	LogAppendTime  bool  // the leader stamps batches at proposal
	// ProducerIDExpiryMs: an idempotent producer silent this long (by the
	// leaders' clocks) is forgotten (0 = DefaultProducerIDExpiryMs).
	ProducerIDExpiryMs int64
}

// DefaultProducerIDExpiryMs is Kafka's producer.id.expiration.ms default.
const DefaultProducerIDExpiryMs = 24 * 60 * 60 * 1000

// Acks is how much durability Produce waits for.
type Acks int

const (
	// AcksNone returns once the batch is proposed to Raft.
	AcksNone Acks = 0
	// AcksLeader returns after the leader's durable local append. The
	// batch may be lost if the leader fails before it replicates.
	AcksLeader Acks = 1
	// AcksAll returns once the batch is committed (durable on a majority)
	// and applied: its offsets are below the high watermark.
	AcksAll Acks = -1
)

// ProduceBatch is one producer batch to append.
type ProduceBatch struct {
	// Data is the stored batch bytes, validated by the caller.
	Data         []byte
	Records      uint32
	MaxTimestamp int64
	// ProducerID/Epoch/BaseSequence identify an idempotent batch;
	// -1/-1/-1 = not idempotent.
	ProducerID    int64
	ProducerEpoch int32
	BaseSequence  int32
	// Framed, when not nil, is CommandHeaderLen free bytes followed by
	// Data, in one allocation (batch.NormalizeFramed builds it): the
	// entry is built in place, without copying the batch. Propose takes
	// the buffer over; a caller must not change it afterwards, and passes
	// it again only to propose the same batch again after a definite
	// failure.
	Framed []byte
}

// CommandHeaderLen is the room ProduceBatch.Framed leaves in front of the
// batch for the entry's header.
const CommandHeaderLen = recordsHeaderLen

// ProduceResult is where a batch landed.
type ProduceResult struct {
	BaseOffset uint64
	// LogAppendTime is the leader's stamp (unix ms) when the topic uses
	// log-append time, else -1.
	LogAppendTime int64
}
