package replication

import (
	"go.etcd.io/raft/v3/raftpb"
)

// GroupMessage is a Raft message of one group (partition) in transit
// between nodes.
type GroupMessage struct {
	GroupID uint64
	Message *raftpb.Message
	// Quiesce flags a leader's heartbeat that also asks the follower to
	// stop ticking (see quiesce.go). Transports must carry it.
	Quiesce bool
}

// MessageHandler receives a batch of messages sent by node from. It must not
// block: the host only queues them for its scheduler.
type MessageHandler func(from uint64, msgs []GroupMessage)

// Transport carries Raft messages between the hosts of different nodes.
//
// The host batches: every scheduler pass hands Send all messages for one
// destination node at once (of one or many groups), so an implementation
// can write them as one frame on the stream to that node. Delivery is best
// effort and must preserve order per destination; Raft retries what is
// lost. Send must not block for long (queue, or drop when the queue is
// full). Messages are owned by the transport after Send and must not be
// shared with the receiver without copying or marshalling them.
//
// GroupID 0 is reserved for node-level liveness messages (one per pair of
// nodes and heartbeat interval); every message received from a node counts
// as a sign of its life.
//
// A node-to-node gRPC transport (one stream per pair of nodes, heartbeats
// coalesced, snapshots chunked) implements this interface; MemNetwork is
// the in-process implementation for tests.
type Transport interface {
	// Send queues msgs, all addressed to node `to`.
	Send(to uint64, msgs []GroupMessage)
	// Register installs the handler for messages addressed to nodeID; a
	// nil handler unregisters it (the host does so on Close).
	Register(nodeID uint64, h MessageHandler)
}
