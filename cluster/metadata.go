package cluster

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/replication"
)

// Reserved Raft group ids. Topic partitions get ids from firstTopicGroupID on.
const (
	// MetadataGroupID is the Raft group of the __cluster_metadata partition.
	MetadataGroupID uint64 = 1
	// MetadataTopic names the metadata partition.
	MetadataTopic = "__cluster_metadata"

	firstTopicGroupID uint64 = 1 << 10
)

// Config configures a node's metadata.
type Config struct {
	// NodeID of this node; non-zero.
	NodeID uint64
	// Host runs this node's replicas (the metadata partition among them).
	Host *replication.Host
	// DataDir is the host's data directory; when set, partition
	// directories no replica uses are deleted at start.
	DataDir string
	// Addr and InternalAddr are what other nodes and clients are told.
	Addr, InternalAddr string
	Rack               string
	// Voters of the metadata group when it is created (default: this node).
	Voters []uint64
	// Join opens the metadata replica of a node outside the controller
	// quorum: it never creates the group, the controller added it as a
	// learner (AddNode) and sends it the log.
	Join bool
	// DefaultPartitions and DefaultReplicationFactor apply when a topic is
	// created with 0 (defaults 1 and 3; the factor is capped at the number
	// of nodes).
	DefaultPartitions, DefaultReplicationFactor int32
	// ProducerIDBlock is how many producer ids a node takes at a time
	// (default 1000).
	ProducerIDBlock int64
	// Forward carries a metadata change from this node, when it is not the
	// controller, to the controller (see Forwarder). nil: such changes
	// fail with *NotControllerError.
	Forward Forwarder
	// ReconcileInterval re-checks the local replicas even without
	// metadata changes (default 10s).
	ReconcileInterval time.Duration
	// SnapshotEvery is how many metadata records the controller lets
	// pass between snapshots of the state, after which it compacts the
	// metadata log (snapshot.go; default DefaultSnapshotEvery, negative:
	// never).
	SnapshotEvery int
	// LeaderBalanceInterval is how often the partitions this node leads
	// are handed to their preferred leaders (BalanceLeaders; default 1m,
	// negative: never).
	LeaderBalanceInterval time.Duration
	Logger                *slog.Logger
	Registerer            prometheus.Registerer
	Now                   func() time.Time
}

func (c *Config) validate() error {
	if c.NodeID == 0 || c.Host == nil {
		return errors.New("cluster: NodeID and Host are required")
	}
	if len(c.Voters) == 0 {
		c.Voters = []uint64{c.NodeID}
	}
	if c.DefaultPartitions <= 0 {
		c.DefaultPartitions = 1
	}
	if c.DefaultReplicationFactor <= 0 {
		c.DefaultReplicationFactor = 3
	}
	if c.ProducerIDBlock <= 0 {
		c.ProducerIDBlock = 1000
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = 10 * time.Second
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.LeaderBalanceInterval == 0 {
		c.LeaderBalanceInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Forwarder hands an encoded metadata command to the controller node
// (which passes it to its Metadata.HandleForwarded) and returns the
// metadata log offset after the command, once the controller applied it.
// An error of the controller's HandleForwarded must come back unchanged in
// meaning (the node-to-node RPC maps it both ways). Only node-level
// changes are forwarded (node registration, producer-id blocks); topic
// changes are routed to the controller as whole API calls by the server.
type Forwarder func(ctx context.Context, controller NodeInfo, command []byte) (applied uint64, err error)

// Metadata is one node's view of the cluster metadata and, on the
// controller leader, the way to change it.
type Metadata struct {
	cfg    Config
	logger *slog.Logger
	part   *replication.Partition // the metadata partition replica

	proposeMu sync.Mutex // serializes proposals: validate, propose, wait

	mu struct {
		sync.Mutex
		state      *State
		changed    chan struct{} // closed when state moves
		rejected   map[uint64]error
		failed     error // apply stopped on a record it cannot read
		reconciled uint64
		recCh      chan struct{} // closed when reconciled moves
		pidNext    int64
		pidEnd     int64
		campaign   map[uint64]*campaign // partitions to campaign for
		heard      map[uint64]time.Time
		// leaderTerm is the controller term this node last saw itself lead
		// in, and leaderSince when it first saw it.
		leaderTerm  uint64
		leaderSince time.Time
	}
	campaignWake chan struct{}
	// registered is closed once this node's registration is applied: from
	// then on the state is at least as new as when the node started, and
	// reconcile may remove replicas (before, it only opens them).
	registered chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (or creates) the metadata partition, replays it, registers
// this node, and starts applying and reconciling. It returns once the
// node's view is current or ctx ends.
func Open(ctx context.Context, cfg Config) (*Metadata, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p, err := cfg.Host.OpenPartition(replication.PartitionSpec{
		GroupID: MetadataGroupID,
		Dir:     MetadataTopic + "-0",
		Voters:  cfg.Voters,
		Join:    cfg.Join,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open metadata partition: %w", err)
	}
	m := &Metadata{cfg: cfg, logger: cfg.Logger.With("component", "cluster"), part: p, stop: make(chan struct{}),
		registered: make(chan struct{})}
	m.mu.state = newState()
	m.mu.changed = make(chan struct{})
	m.mu.recCh = make(chan struct{})
	m.mu.rejected = map[uint64]error{}
	m.mu.campaign = map[uint64]*campaign{}
	m.mu.heard = map[uint64]time.Time{}
	m.campaignWake = make(chan struct{}, 1)
	// The reconcile loop starts before the registration: on a restart it
	// opens the replicas the node's own metadata log places here while the
	// registration waits for a controller. When the whole cluster restarts,
	// a node's registration is forwarded to a controller that serves
	// forwards only once its own Open returned, which waits for its
	// replicas to catch up, which needs the other nodes' replicas open.
	m.wg.Add(4)
	go m.applyLoop()
	go m.campaignLoop()
	go m.moverLoop()
	go m.reconcileLoop()

	if err := m.register(ctx); err != nil {
		_ = m.Close()
		return nil, err
	}
	close(m.registered)
	if m.cfg.LeaderBalanceInterval > 0 {
		m.wg.Add(1)
		go m.balanceLoop()
	}
	if err := m.waitReconciled(ctx, m.State().Applied); err != nil {
		_ = m.Close()
		return nil, err
	}
	if err := m.waitCaughtUp(ctx); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

// register records this node in the metadata (a barrier too: once it is
// applied, everything before it is). The first registration of a cluster
// also sets its id.
func (m *Metadata) register(ctx context.Context) error {
	var idb [16]byte
	_, _ = crand.Read(idb[:])
	c := &command{Type: cmdRegisterNode, ClusterID: hex.EncodeToString(idb[:]), Node: &NodeInfo{
		ID: m.cfg.NodeID, Addr: m.cfg.Addr, InternalAddr: m.cfg.InternalAddr, Rack: m.cfg.Rack,
	}}
	backoff := 10 * time.Millisecond
	for {
		_, err := m.propose(ctx, c)
		var nc *NotControllerError
		if err == nil || !errors.As(err, &nc) {
			if err != nil {
				return fmt.Errorf("cluster: register node %d: %w", m.cfg.NodeID, err)
			}
			return nil
		}
		// No controller yet (an election is under way): wait for one. A
		// group of one cannot campaign before its bootstrap configuration
		// applies; nudge it rather than wait for an election timeout.
		if nc.Leader == 0 && len(m.cfg.Voters) == 1 && m.cfg.Voters[0] == m.cfg.NodeID {
			m.part.Campaign()
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 500*time.Millisecond)
		case <-ctx.Done():
			return fmt.Errorf("cluster: register node %d: %w", m.cfg.NodeID, ctx.Err())
		case <-m.stop:
			return ErrClosed
		}
	}
}

// Close stops applying and reconciling. It leaves the replicas open: the
// replication host owns them.
func (m *Metadata) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.wg.Wait()
	return nil
}

// State is the current metadata. It is immutable: do not modify it.
func (m *Metadata) State() *State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.state
}

// Changed is closed when the state next changes.
func (m *Metadata) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.changed
}

// NodeID is this node's id.
func (m *Metadata) NodeID() uint64 { return m.cfg.NodeID }

// ControllerID is the node leading the metadata group (0 if none).
func (m *Metadata) ControllerID() uint64 { return m.part.Leader() }

// ControllerVoters are the voters of the metadata group as this node
// knows them.
func (m *Metadata) ControllerVoters() []uint64 { return m.part.Status().Voters }

// Err is the error that stopped this node from applying the metadata log
// (nil while it applies normally). A node with an error serves a frozen
// view and should not report itself ready.
func (m *Metadata) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.failed
}

// LivenessTimeout is how long the controller counts a node alive after
// it last heard from it.
const LivenessTimeout = 5 * time.Second

// Alive reports whether a node is up. The controller knows: a node is
// alive if it heard from it within LivenessTimeout, through the metadata
// group (voters) or a heartbeat (see Heard). A controller that took over
// less than LivenessTimeout ago has not had the time to hear from every
// node, so it counts registered nodes alive until then, as other nodes
// (which do not track liveness) always do.
func (m *Metadata) Alive(id uint64) bool {
	if id == m.cfg.NodeID {
		return true
	}
	st := m.part.Status()
	if !st.IsLeader {
		_, registered := m.State().Nodes[id]
		return registered
	}
	for _, r := range st.Replicas {
		if r.NodeID == id && r.Active {
			return true
		}
	}
	now := m.cfg.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.leaderTerm != st.Term {
		m.mu.leaderTerm, m.mu.leaderSince = st.Term, now
	}
	if _, registered := m.mu.state.Nodes[id]; registered && now.Sub(m.mu.leaderSince) < LivenessTimeout {
		return true
	}
	t, ok := m.mu.heard[id]
	return ok && now.Sub(t) < LivenessTimeout
}

// Heard records a heartbeat from a node (on the controller).
func (m *Metadata) Heard(id uint64) {
	now := m.cfg.Now()
	m.mu.Lock()
	m.mu.heard[id] = now
	m.mu.Unlock()
}

// IsController reports whether this node leads the metadata group.
func (m *Metadata) IsController() bool { return m.part.IsLeader() }

// Partition returns this node's replica of a topic partition.
func (m *Metadata) Partition(topic string, index int32) (*replication.Partition, *Topic, error) {
	s := m.State()
	t, ok := s.Topics[topic]
	if !ok {
		return nil, nil, &UnknownTopicError{Topic: topic}
	}
	if index < 0 || int(index) >= len(t.Partitions) {
		return nil, t, &UnknownPartitionError{Topic: topic, Partition: index}
	}
	pi := t.Partitions[index]
	p, ok := m.cfg.Host.Partition(pi.GroupID)
	if !ok {
		for _, r := range pi.Replicas {
			if r == m.cfg.NodeID {
				return nil, t, ErrNotOpen
			}
		}
		return nil, t, &NotReplicaError{Topic: topic, Partition: index, Replicas: pi.Replicas}
	}
	return p, t, nil
}

// propose appends c to the metadata log and waits until it is applied
// here. It returns the state right after c, or the reason apply skipped c.
func (m *Metadata) propose(ctx context.Context, c *command) (*State, error) {
	if err := m.Err(); err != nil {
		return nil, err
	}
	if !m.part.IsLeader() {
		leader := m.part.Leader()
		if leader == 0 || m.cfg.Forward == nil || !forwardable(c) {
			return nil, &NotControllerError{Leader: leader}
		}
		ctl, known := m.State().Nodes[leader]
		if !known { // its registration has not reached this node yet
			return nil, &NotControllerError{Leader: leader}
		}
		c.V = commandVersion
		data, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		applied, err := m.cfg.Forward(ctx, *ctl, data)
		if err != nil {
			return nil, err
		}
		if applied == 0 {
			return nil, fmt.Errorf("cluster: controller %d returned no offset", leader)
		}
		return m.waitApplied(ctx, applied-1)
	}
	now := m.cfg.Now().UnixMilli()
	data, err := encodeCommand(c, now)
	if err != nil {
		return nil, err
	}
	res, err := m.part.Produce(ctx, replication.ProduceBatch{
		Data: data, Records: 1, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
	}, replication.AcksAll)
	if err != nil {
		var nl *replication.NotLeaderError
		if errors.As(err, &nl) {
			return nil, &NotControllerError{Leader: nl.Leader}
		}
		return nil, fmt.Errorf("cluster: propose %s: %w", c.Type, err)
	}
	return m.waitApplied(ctx, res.BaseOffset)
}

// forwardable reports whether a command may come from another node.
func forwardable(c *command) bool {
	return c.Type == cmdRegisterNode || c.Type == cmdAllocProducerIDs || c.Type == cmdReassignDone
}

// HandleForwarded proposes a command forwarded by another node (see
// Forwarder) and returns the metadata log offset after it once applied.
func (m *Metadata) HandleForwarded(ctx context.Context, data []byte) (uint64, error) {
	c := new(command)
	if err := json.Unmarshal(data, c); err != nil || c.V != commandVersion {
		return 0, &InvalidError{Field: "command", Reason: "undecodable"}
	}
	if !forwardable(c) {
		return 0, &InvalidError{Field: "command", Reason: fmt.Sprintf("%q cannot be forwarded", c.Type)}
	}
	if !m.part.IsLeader() {
		return 0, &NotControllerError{Leader: m.part.Leader()}
	}
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if _, err := apply(m.State(), c); err != nil {
		return 0, err
	}
	ns, err := m.propose(ctx, c)
	if err != nil {
		return 0, err
	}
	return ns.Applied, nil
}

// waitApplied waits until the record at offset is applied and returns the
// state after it (or the error that made apply skip it).
func (m *Metadata) waitApplied(ctx context.Context, offset uint64) (*State, error) {
	for {
		m.mu.Lock()
		s, ch, failed := m.mu.state, m.mu.changed, m.mu.failed
		rej, isRej := m.mu.rejected[offset]
		m.mu.Unlock()
		if s.Applied > offset {
			if isRej {
				return nil, rej
			}
			return s, nil
		}
		if failed != nil {
			return nil, failed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-m.stop:
			return nil, ErrClosed
		}
	}
}

// topicSeed spreads the placement start of different topics.
func topicSeed(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

func newTopicID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// catchUpWait bounds how long Open waits for the local replicas to catch
// up (a partition without a quorum must not keep the node from starting).
const catchUpWait = 15 * time.Second

// waitCaughtUp waits until every local replica serves a high watermark at
// least as high as before a restart: a leader has applied its whole log
// (its first entry of the new term commits everything before it), a
// follower has heard from a leader and applied what it learned is
// committed. It gives up after catchUpWait, leaving the rest to catch up
// while the node serves.
func (m *Metadata) waitCaughtUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for _, p := range m.cfg.Host.Partitions() {
		for !caughtUp(p.Status()) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				m.logger.Warn("partition replica still catching up", "group", p.GroupID())
				return nil
			case <-m.stop:
				return ErrClosed
			}
		}
	}
	return nil
}

func caughtUp(st replication.PartitionStatus) bool {
	if st.Leader == 0 || st.Applied < st.Commit {
		return false
	}
	if !st.IsLeader {
		return true
	}
	for _, r := range st.Replicas {
		if r.NodeID == st.NodeID {
			return st.Applied >= r.Match
		}
	}
	return false
}
