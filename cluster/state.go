package cluster

import (
	"maps"
	"slices"
	"strings"
)

// State is the cluster metadata as of an offset of the metadata log. A
// published State is immutable: readers share it without locks and apply
// builds the next one from a copy.
type State struct {
	// ClusterID is set by the first node to start the cluster.
	ClusterID string
	// Applied is the metadata log offset after the last applied record.
	Applied uint64
	// Nodes by id.
	Nodes map[uint64]*NodeInfo
	// Topics by name.
	Topics map[string]*Topic
	// NextGroupID is the Raft group id the next partition gets.
	NextGroupID uint64
	// NextProducerID is the first producer id not yet handed out in a block.
	NextProducerID int64
	// ProducerBlocks is the last producer-id block given to each node.
	ProducerBlocks map[uint64]ProducerBlock
	// Decommissioned nodes get no new replicas; theirs move away.
	Decommissioned map[uint64]bool
	// SnapshotAt is the offset of the last snapshot record (0: none): the
	// metadata log may be compacted up to it (snapshot.go).
	SnapshotAt uint64
}

// NodeInfo is a registered node.
type NodeInfo struct {
	ID           uint64
	Addr         string // client API
	InternalAddr string // node to node
	Rack         string
}

// Topic is a topic and its partition placement.
type Topic struct {
	Name string
	// ID is unique per incarnation: a re-created topic gets a new one.
	ID                string
	ReplicationFactor int32
	// Configs holds the keys set explicitly; the rest take defaults.
	Configs    map[string]string
	Partitions []PartitionInfo

	parsed TopicConfig // Configs parsed, set by apply
}

// PartitionInfo is one partition's placement.
type PartitionInfo struct {
	Index   int32
	GroupID uint64
	// Replicas in placement order; the first is the preferred leader.
	Replicas []uint64
	// Target is the replica set a reassignment moves to (nil: none in
	// progress). The partition's leader drives the Raft membership
	// changes (reassign.go); Replicas becomes Target once they are done.
	Target []uint64
}

// ProducerBlock is a range [Start, Start+Count) of producer ids.
type ProducerBlock struct {
	Start, Count int64
}

// Internal reports whether a topic name is reserved for the system.
func Internal(name string) bool { return strings.HasPrefix(name, "__") }

// Config is the topic's effective configuration.
func (t *Topic) Config() TopicConfig {
	if t.parsed.SegmentBytes == 0 { // not built by apply
		return parseTopicConfig(t.Configs)
	}
	return t.parsed
}

// ConfigEntries lists every configuration key with its effective value.
func (t *Topic) ConfigEntries() []ConfigEntry { return configEntries(t.Configs) }

// Topic returns a topic by name.
func (s *State) Topic(name string) (*Topic, bool) {
	t, ok := s.Topics[name]
	return t, ok
}

// TopicNames lists topic names, sorted.
func (s *State) TopicNames() []string { return slices.Sorted(maps.Keys(s.Topics)) }

// NodeIDs lists node ids, sorted.
func (s *State) NodeIDs() []uint64 { return slices.Sorted(maps.Keys(s.Nodes)) }

// PartitionCount is the number of partitions of all topics.
func (s *State) PartitionCount() int {
	n := 0
	for _, t := range s.Topics {
		n += len(t.Partitions)
	}
	return n
}

func newState() *State {
	return &State{
		Nodes:          map[uint64]*NodeInfo{},
		Topics:         map[string]*Topic{},
		NextGroupID:    firstTopicGroupID,
		NextProducerID: 1,
		ProducerBlocks: map[uint64]ProducerBlock{},
		Decommissioned: map[uint64]bool{},
	}
}

// clone copies the maps; topics and nodes themselves are replaced, never
// modified, by apply, so they are shared.
func (s *State) clone() *State {
	c := *s
	c.Nodes = maps.Clone(s.Nodes)
	c.Topics = maps.Clone(s.Topics)
	c.ProducerBlocks = maps.Clone(s.ProducerBlocks)
	c.Decommissioned = maps.Clone(s.Decommissioned)
	if c.Decommissioned == nil {
		c.Decommissioned = map[uint64]bool{}
	}
	return &c
}

// cloneTopic is a deep copy of t that apply may modify.
func cloneTopic(t *Topic) *Topic {
	c := *t
	c.Configs = maps.Clone(t.Configs)
	if c.Configs == nil {
		c.Configs = map[string]string{}
	}
	c.Partitions = make([]PartitionInfo, len(t.Partitions))
	for i, p := range t.Partitions {
		p.Replicas = slices.Clone(p.Replicas)
		p.Target = slices.Clone(p.Target)
		c.Partitions[i] = p
	}
	return &c
}
