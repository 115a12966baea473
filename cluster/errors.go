package cluster

import (
	"errors"
	"fmt"
)

// UnknownTopicError: the topic does not exist.
type UnknownTopicError struct{ Topic string }

func (e *UnknownTopicError) Error() string { return fmt.Sprintf("cluster: unknown topic %q", e.Topic) }

// UnknownPartitionError: the topic has no such partition.
type UnknownPartitionError struct {
	Topic     string
	Partition int32
}

func (e *UnknownPartitionError) Error() string {
	return fmt.Sprintf("cluster: topic %q has no partition %d", e.Topic, e.Partition)
}

// TopicExistsError: a topic of that name exists.
type TopicExistsError struct{ Topic string }

func (e *TopicExistsError) Error() string { return fmt.Sprintf("cluster: topic %q exists", e.Topic) }

// ConfigError: a topic configuration key or value is invalid.
type ConfigError struct {
	Key, Value, Reason string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("cluster: config %q: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("cluster: config %s=%q: %s", e.Key, e.Value, e.Reason)
}

// InvalidError: an argument of a metadata operation is invalid. Field names
// the argument as the API calls it ("name", "partitions", ...).
type InvalidError struct {
	Field, Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("cluster: invalid %s: %s", e.Field, e.Reason)
}

// NotControllerError: this node does not lead the metadata group, so it
// cannot change the metadata. Leader is the controller's node id (0 when
// unknown). Nothing was proposed.
type NotControllerError struct{ Leader uint64 }

func (e *NotControllerError) Error() string {
	if e.Leader == 0 {
		return "cluster: no controller is elected"
	}
	return fmt.Sprintf("cluster: not the controller (node %d is)", e.Leader)
}

// NotReplicaError: this node holds no replica of the partition (it lives
// on Replicas). Routing to the leader is the caller's job.
type NotReplicaError struct {
	Topic     string
	Partition int32
	Replicas  []uint64
}

func (e *NotReplicaError) Error() string {
	return fmt.Sprintf("cluster: partition %s/%d has no replica on this node (replicas %v)", e.Topic, e.Partition, e.Replicas)
}

var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("cluster: closed")
	// ErrMetadataFailed wraps the reason this node stopped applying the
	// metadata log; its metadata is frozen and it cannot change it.
	ErrMetadataFailed = errors.New("cluster: metadata log cannot be applied")
	// ErrNotOpen is returned for a partition this node should host but
	// has not opened yet (reconciliation is behind); retry shortly.
	ErrNotOpen = errors.New("cluster: partition replica not open yet")
)
