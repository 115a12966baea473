package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Metadata log format.
//
// Every record of the metadata partition is one command; its value is the
// JSON encoding of command. Records travel in ordinary record batches
// (uncompressed, one record per batch) so the metadata partition is a
// partition like any other. Commands are validated when proposed and again
// when applied: apply is deterministic, and a command that no longer fits
// the state (two racing creations of one topic) is skipped on every node
// alike. Unknown command types or versions stop the apply loop: a node
// must not build a state that differs from its peers'.
const commandVersion = 1

// Command types.
const (
	cmdRegisterNode     = "register_node"
	cmdCreateTopic      = "create_topic"
	cmdDeleteTopic      = "delete_topic"
	cmdAddPartitions    = "add_partitions"
	cmdAlterConfig      = "alter_config"
	cmdAllocProducerIDs = "alloc_producer_ids"
	cmdReassign         = "reassign"      // Moves: set each partition's Target
	cmdReassignDone     = "reassign_done" // Moves: Replicas = Target
	cmdDecommission     = "decommission"  // NodeID, and Moves off it
	cmdRemoveNode       = "remove_node"   // NodeID: a decommissioned node that holds no replica leaves the registry
	cmdSnapshot         = "snapshot"      // Snapshot: the whole state before this record (snapshot.go)
)

type command struct {
	V    int    `json:"v"`
	Type string `json:"type"`

	// register_node (ClusterID: the id to use if the cluster has none)
	ClusterID string    `json:"cluster_id,omitempty"`
	Node      *NodeInfo `json:"node,omitempty"`

	// topic commands
	Topic    string            `json:"topic,omitempty"`
	TopicID  string            `json:"topic_id,omitempty"`
	RF       int32             `json:"rf,omitempty"`
	Configs  map[string]string `json:"configs,omitempty"`  // create: all explicit; alter: keys to set
	Reset    []string          `json:"reset,omitempty"`    // alter: keys to reset
	Replicas [][]uint64        `json:"replicas,omitempty"` // create/add: placement of each new partition

	// alloc_producer_ids
	NodeID uint64 `json:"node_id,omitempty"`
	Count  int64  `json:"count,omitempty"`

	// reassign, reassign_done, decommission
	Moves []move `json:"moves,omitempty"`

	// snapshot
	Snapshot *State `json:"snapshot,omitempty"`
}

// move is one partition's reassignment.
type move struct {
	Topic     string   `json:"topic"`
	TopicID   string   `json:"topic_id"`
	Partition int32    `json:"partition"`
	Replicas  []uint64 `json:"replicas"` // the target
}

var errCorruptCommand = errors.New("cluster: corrupt metadata record")

// encodeCommand returns the stored batch bytes of a one-record batch
// holding c.
func encodeCommand(c *command, nowMs int64) ([]byte, error) {
	c.V = commandVersion
	v, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	b := &sluicev1.RecordBatch{
		RecordCount:    1,
		Compression:    sluicev1.Compression_COMPRESSION_NONE,
		TimestampType:  sluicev1.TimestampType_TIMESTAMP_TYPE_CREATE_TIME,
		MaxTimestampMs: nowMs,
		ProducerId:     -1,
		ProducerEpoch:  -1,
		BaseSequence:   -1,
		Records:        []*sluicev1.Record{{Value: v, TimestampMs: nowMs}},
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(b)
}

// decodeCommands decodes the commands of one stored batch, in order.
func decodeCommands(stored []byte) ([]*command, error) {
	var b sluicev1.RecordBatch
	if err := proto.Unmarshal(stored, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptCommand, err)
	}
	if len(b.RecordsData) > 0 || len(b.Records) == 0 {
		return nil, fmt.Errorf("%w: unexpected batch shape", errCorruptCommand)
	}
	out := make([]*command, 0, len(b.Records))
	for _, r := range b.Records {
		c := new(command)
		if err := json.Unmarshal(r.Value, c); err != nil {
			return nil, fmt.Errorf("%w: %w", errCorruptCommand, err)
		}
		if c.V != commandVersion {
			return nil, fmt.Errorf("%w: version %d", errCorruptCommand, c.V)
		}
		out = append(out, c)
	}
	return out, nil
}

// apply returns the state after c, or an error (and s unchanged) when c
// does not apply to s. Both outcomes are identical on every node.
// errUnknownCommand is fatal; the others only skip the command.
func apply(s *State, c *command) (*State, error) {
	n := s.clone()
	switch c.Type {
	case cmdRegisterNode:
		if c.Node == nil || c.Node.ID == 0 {
			return s, &InvalidError{Field: "node", Reason: "missing"}
		}
		if _, known := n.Nodes[c.Node.ID]; !known && n.Decommissioned[c.Node.ID] {
			return s, &InvalidError{Field: "node", Reason: fmt.Sprintf("node %d was decommissioned and removed from the cluster", c.Node.ID)}
		}
		if n.ClusterID == "" {
			n.ClusterID = c.ClusterID
		}
		node := *c.Node
		n.Nodes[node.ID] = &node
	case cmdCreateTopic:
		if _, ok := n.Topics[c.Topic]; ok {
			return s, &TopicExistsError{Topic: c.Topic}
		}
		if err := checkTopic(c.Topic, c.RF, c.Configs, c.Replicas); err != nil {
			return s, err
		}
		t := &Topic{Name: c.Topic, ID: c.TopicID, ReplicationFactor: c.RF, Configs: map[string]string{}}
		for k, v := range c.Configs {
			t.Configs[k] = v
		}
		addPartitions(n, t, c.Replicas)
		t.parsed = parseTopicConfig(t.Configs)
		n.Topics[t.Name] = t
	case cmdDeleteTopic:
		t, ok := n.Topics[c.Topic]
		if !ok || (c.TopicID != "" && t.ID != c.TopicID) {
			return s, &UnknownTopicError{Topic: c.Topic}
		}
		delete(n.Topics, c.Topic)
	case cmdAddPartitions:
		t, ok := n.Topics[c.Topic]
		if !ok || (c.TopicID != "" && t.ID != c.TopicID) {
			return s, &UnknownTopicError{Topic: c.Topic}
		}
		if err := checkReplicas(c.Replicas, t.ReplicationFactor, len(t.Partitions)); err != nil {
			return s, err
		}
		t = cloneTopic(t)
		addPartitions(n, t, c.Replicas)
		n.Topics[t.Name] = t
	case cmdAlterConfig:
		t, ok := n.Topics[c.Topic]
		if !ok || (c.TopicID != "" && t.ID != c.TopicID) {
			return s, &UnknownTopicError{Topic: c.Topic}
		}
		t = cloneTopic(t)
		for _, k := range c.Reset {
			delete(t.Configs, k)
		}
		for k, v := range c.Configs {
			t.Configs[k] = v
		}
		if err := ValidateConfigs(t.Configs, t.ReplicationFactor); err != nil {
			return s, err
		}
		t.parsed = parseTopicConfig(t.Configs)
		n.Topics[t.Name] = t
	case cmdAllocProducerIDs:
		if c.Count <= 0 || c.Count > 1<<20 || c.NodeID == 0 {
			return s, &InvalidError{Field: "count", Reason: "out of range"}
		}
		n.ProducerBlocks[c.NodeID] = ProducerBlock{Start: n.NextProducerID, Count: c.Count}
		n.NextProducerID += c.Count
	case cmdReassign:
		if err := applyMoves(n, c.Moves, false, false); err != nil {
			return s, err
		}
	case cmdReassignDone:
		if err := applyMoves(n, c.Moves, true, true); err != nil {
			return s, err
		}
	case cmdDecommission:
		if _, ok := n.Nodes[c.NodeID]; !ok {
			return s, &InvalidError{Field: "node_id", Reason: "no such node"}
		}
		if len(c.Moves) > 0 {
			if err := applyMoves(n, c.Moves, false, true); err != nil {
				return s, err
			}
		}
		n.Decommissioned[c.NodeID] = true
	case cmdRemoveNode:
		if _, ok := n.Nodes[c.NodeID]; !ok || !n.Decommissioned[c.NodeID] {
			return s, &InvalidError{Field: "node_id", Reason: "not a registered decommissioned node"}
		}
		if holdsReplicas(n, c.NodeID) {
			return s, &InvalidError{Field: "node_id", Reason: fmt.Sprintf("node %d still holds replicas", c.NodeID)}
		}
		delete(n.Nodes, c.NodeID)
		delete(n.ProducerBlocks, c.NodeID)
	case cmdSnapshot:
		return s, &InvalidError{Field: "snapshot", Reason: "a snapshot record applies by its offset (restoreSnapshot)"}
	default:
		return s, fmt.Errorf("%w: command type %q", errUnknownCommand, c.Type)
	}
	return n, nil
}

var errUnknownCommand = errors.New("cluster: unknown metadata command")

func addPartitions(s *State, t *Topic, replicas [][]uint64) {
	for _, r := range replicas {
		t.Partitions = append(t.Partitions, PartitionInfo{
			Index:    int32(len(t.Partitions)),
			GroupID:  s.NextGroupID,
			Replicas: slices.Clone(r),
		})
		s.NextGroupID++
	}
}

// checkTopic validates a topic creation's arguments.
func checkTopic(name string, rf int32, cfg map[string]string, replicas [][]uint64) error {
	if err := ValidateTopicName(name, true); err != nil {
		return err
	}
	if rf < 1 {
		return &InvalidError{Field: "replication_factor", Reason: "must be at least 1"}
	}
	if len(replicas) == 0 {
		return &InvalidError{Field: "partitions", Reason: "must be at least 1"}
	}
	if err := ValidateConfigs(cfg, rf); err != nil {
		return err
	}
	return checkReplicas(replicas, rf, 0)
}

func checkReplicas(replicas [][]uint64, rf int32, existing int) error {
	if len(replicas) == 0 || existing+len(replicas) > MaxPartitions {
		return &InvalidError{Field: "partitions", Reason: fmt.Sprintf("must add 1 to %d partitions", MaxPartitions-existing)}
	}
	for _, r := range replicas {
		if len(r) != int(rf) {
			return &InvalidError{Field: "replicas", Reason: "placement does not match the replication factor"}
		}
		for i, id := range r {
			if id == 0 || slices.Contains(r[:i], id) {
				return &InvalidError{Field: "replicas", Reason: "invalid or repeated node id"}
			}
		}
	}
	return nil
}

// MaxPartitions bounds the partitions of one topic.
const MaxPartitions = 10000

// ValidateTopicName checks a topic name: 1 to 249 characters of
// [a-zA-Z0-9._-], not "." or "..". Names starting with "__" are reserved
// for the system unless internal is true.
func ValidateTopicName(name string, internal bool) error {
	if name == "" {
		return &InvalidError{Field: "name", Reason: "must not be empty"}
	}
	if len(name) > 249 {
		return &InvalidError{Field: "name", Reason: "longer than 249 characters"}
	}
	if name == "." || name == ".." {
		return &InvalidError{Field: "name", Reason: `must not be "." or ".."`}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return &InvalidError{Field: "name", Reason: "only [a-zA-Z0-9._-] allowed"}
		}
	}
	if !internal && Internal(name) {
		return &InvalidError{Field: "name", Reason: `names starting with "__" are reserved`}
	}
	return nil
}
