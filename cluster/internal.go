package cluster

import (
	"context"
	"maps"
)

// CreateInternalTopic creates a system topic (a name starting with "__",
// such as __consumer_offsets) the way CreateTopic creates a user topic.
// Only the controller creates it; elsewhere it fails with
// *NotControllerError. It returns the existing topic when there is one.
func (m *Metadata) CreateInternalTopic(ctx context.Context, spec TopicSpec) (*Topic, error) {
	if err := ValidateTopicName(spec.Name, true); err != nil {
		return nil, err
	}
	if !Internal(spec.Name) {
		return nil, &InvalidError{Field: "name", Reason: "an internal topic name starts with __"}
	}
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if t, ok := m.State().Topics[spec.Name]; ok {
		return t, nil
	}
	if err := m.checkController(); err != nil {
		return nil, err
	}
	s := m.State()
	nodes := m.liveNodes(s)
	parts, rf := spec.Partitions, spec.ReplicationFactor
	if parts <= 0 {
		parts = int32(max(len(nodes), 1))
	}
	if rf <= 0 {
		rf = min(3, int32(max(len(nodes), 1)))
	}
	replicas, err := Place(nodes, 0, parts, rf, topicSeed(spec.Name))
	if err != nil {
		return nil, err
	}
	ns, err := m.propose(ctx, &command{Type: cmdCreateTopic, Topic: spec.Name, TopicID: newTopicID(), RF: rf,
		Configs: maps.Clone(spec.Configs), Replicas: replicas})
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
