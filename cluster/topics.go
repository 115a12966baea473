package cluster

import (
	"context"
	"maps"
	"slices"
	"time"
)

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name string
	// Partitions and ReplicationFactor: 0 = the configured default (the
	// factor is then capped at the number of nodes).
	Partitions, ReplicationFactor int32
	Configs                       map[string]string
	// ValidateOnly checks the request and returns the topic that would be
	// created, without creating it.
	ValidateOnly bool
}

// liveNodes lists the nodes replicas may be placed on.
func (m *Metadata) liveNodes(s *State) []NodeInfo {
	var out []NodeInfo
	for _, id := range s.NodeIDs() {
		if m.Alive(id) && !s.Decommissioned[id] {
			out = append(out, *s.Nodes[id])
		}
	}
	return out
}

// CreateTopic creates a topic; it returns once this node has applied the
// creation and opened its replicas of the new partitions.
func (m *Metadata) CreateTopic(ctx context.Context, spec TopicSpec) (*Topic, error) {
	if err := ValidateTopicName(spec.Name, false); err != nil {
		return nil, err
	}
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return nil, err
	}
	s := m.State()
	if _, ok := s.Topics[spec.Name]; ok {
		return nil, &TopicExistsError{Topic: spec.Name}
	}
	nodes := m.liveNodes(s)
	parts, rf := spec.Partitions, spec.ReplicationFactor
	if parts < 0 || parts > MaxPartitions {
		return nil, &InvalidError{Field: "partitions", Reason: "must be between 1 and 10000"}
	}
	if rf < 0 {
		return nil, &InvalidError{Field: "replication_factor", Reason: "must not be negative"}
	}
	if parts == 0 {
		parts = m.cfg.DefaultPartitions
	}
	if rf == 0 {
		rf = min(m.cfg.DefaultReplicationFactor, int32(max(len(nodes), 1)))
	}
	if err := ValidateConfigs(spec.Configs, rf); err != nil {
		return nil, err
	}
	replicas, err := Place(nodes, 0, parts, rf, topicSeed(spec.Name))
	if err != nil {
		return nil, err
	}
	c := &command{Type: cmdCreateTopic, Topic: spec.Name, TopicID: newTopicID(), RF: rf,
		Configs: maps.Clone(spec.Configs), Replicas: replicas}
	if spec.ValidateOnly {
		ns, err := apply(s, c)
		if err != nil {
			return nil, err
		}
		return ns.Topics[spec.Name], nil
	}
	ns, err := m.propose(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := m.waitReconciled(ctx, ns.Applied); err != nil {
		return nil, err
	}
	t := ns.Topics[spec.Name]
	m.waitLeaders(ctx, t.Partitions)
	return t, nil
}

// DeleteTopic deletes a topic; this node's replicas are removed with their data.
func (m *Metadata) DeleteTopic(ctx context.Context, name string) error {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return err
	}
	t, ok := m.State().Topics[name]
	if !ok {
		return &UnknownTopicError{Topic: name}
	}
	if Internal(name) {
		return &InvalidError{Field: "name", Reason: "internal topics cannot be deleted"}
	}
	ns, err := m.propose(ctx, &command{Type: cmdDeleteTopic, Topic: name, TopicID: t.ID})
	if err != nil {
		return err
	}
	return m.waitReconciled(ctx, ns.Applied)
}

// AddPartitions raises a topic's partition count to total.
func (m *Metadata) AddPartitions(ctx context.Context, name string, total int32, validateOnly bool) (*Topic, error) {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return nil, err
	}
	s := m.State()
	t, ok := s.Topics[name]
	if !ok {
		return nil, &UnknownTopicError{Topic: name}
	}
	cur := int32(len(t.Partitions))
	if total <= cur {
		return nil, &InvalidError{Field: "total_partitions", Reason: "must be larger than the current count"}
	}
	if total > MaxPartitions {
		return nil, &InvalidError{Field: "total_partitions", Reason: "at most 10000"}
	}
	replicas, err := Place(m.liveNodes(s), cur, total-cur, t.ReplicationFactor, topicSeed(name))
	if err != nil {
		return nil, err
	}
	c := &command{Type: cmdAddPartitions, Topic: name, TopicID: t.ID, Replicas: replicas}
	if validateOnly {
		ns, err := apply(s, c)
		if err != nil {
			return nil, err
		}
		return ns.Topics[name], nil
	}
	ns, err := m.propose(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := m.waitReconciled(ctx, ns.Applied); err != nil {
		return nil, err
	}
	t = ns.Topics[name]
	m.waitLeaders(ctx, t.Partitions[cur:])
	return t, nil
}

// leaderWait bounds how long a topic change waits for its new partitions
// to elect leaders; the change itself is done by then.
const leaderWait = 5 * time.Second

// waitLeaders waits, at most leaderWait, until this node's replicas of
// parts know their leader, so that a topic is usable when its creation
// returns.
func (m *Metadata) waitLeaders(ctx context.Context, parts []PartitionInfo) {
	ctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for _, pi := range parts {
		p, ok := m.cfg.Host.Partition(pi.GroupID)
		if !ok {
			continue
		}
		for p.Leader() == 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

// AlterConfig sets keys to values and resets keys to their defaults.
func (m *Metadata) AlterConfig(ctx context.Context, name string, set map[string]string, reset []string, validateOnly bool) (*Topic, error) {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return nil, err
	}
	s := m.State()
	t, ok := s.Topics[name]
	if !ok {
		return nil, &UnknownTopicError{Topic: name}
	}
	for _, k := range reset {
		if _, known := configDefaults[k]; !known {
			return nil, &ConfigError{Key: k, Reason: "unknown configuration key"}
		}
	}
	c := &command{Type: cmdAlterConfig, Topic: name, TopicID: t.ID, Configs: maps.Clone(set), Reset: slices.Clone(reset)}
	ns, err := apply(s, c) // validates the result
	if err != nil || validateOnly {
		if err != nil {
			return nil, err
		}
		return ns.Topics[name], nil
	}
	ns, err = m.propose(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := m.waitReconciled(ctx, ns.Applied); err != nil {
		return nil, err
	}
	return ns.Topics[name], nil
}

// NextProducerID hands out a producer id from this node's block, taking a
// new block from the controller when it runs out. Ids of a block not used
// before a restart are skipped, never reused.
func (m *Metadata) NextProducerID(ctx context.Context) (int64, error) {
	m.mu.Lock()
	if m.mu.pidNext < m.mu.pidEnd {
		id := m.mu.pidNext
		m.mu.pidNext++
		m.mu.Unlock()
		return id, nil
	}
	m.mu.Unlock()
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	m.mu.Lock()
	if m.mu.pidNext < m.mu.pidEnd { // another caller refilled it
		id := m.mu.pidNext
		m.mu.pidNext++
		m.mu.Unlock()
		return id, nil
	}
	m.mu.Unlock()
	ns, err := m.propose(ctx, &command{Type: cmdAllocProducerIDs, NodeID: m.cfg.NodeID, Count: m.cfg.ProducerIDBlock})
	if err != nil {
		return 0, err
	}
	b := ns.ProducerBlocks[m.cfg.NodeID]
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.pidNext, m.mu.pidEnd = b.Start+1, b.Start+b.Count
	return b.Start, nil
}

// checkController fails with *NotControllerError unless this node leads
// the metadata group: topic changes are made (and placed) there.
func (m *Metadata) checkController() error {
	if err := m.Err(); err != nil {
		return err
	}
	if !m.part.IsLeader() {
		return &NotControllerError{Leader: m.part.Leader()}
	}
	return nil
}
