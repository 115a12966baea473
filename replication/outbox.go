package replication

import (
	"sync"

	"go.etcd.io/raft/v3/raftpb"
)

// outbox hands a pass's messages for other nodes to the transport, one
// Send per destination, on the caller's goroutine: Send only queues (the
// gRPC transport's sender per destination batches whatever accumulated
// while it wrote the previous frame), so a separate goroutine here would
// only add a wake-up to every message's path. Order per destination is
// kept because a group's passes never overlap (raftMu) and each pass
// sends its messages in order.
type outbox struct {
	t  Transport
	mu struct {
		// RWMutex: senders share it, close excludes them, so no Send
		// starts after close returns.
		sync.RWMutex
		closed bool
	}
}

func newOutbox(t Transport) *outbox {
	return &outbox{t: t}
}

func (o *outbox) add(group uint64, msgs []*raftpb.Message) {
	if o.t == nil || len(msgs) == 0 {
		return // single node: no peers to reach
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.mu.closed {
		return
	}
	// Most passes address one or two nodes: split without a map.
	for len(msgs) > 0 {
		to := msgs[0].GetTo()
		batch := make([]GroupMessage, 0, len(msgs))
		rest := msgs[:0:0]
		for _, m := range msgs {
			if m.GetTo() == to {
				batch = append(batch, GroupMessage{GroupID: group, Message: m})
			} else {
				rest = append(rest, m)
			}
		}
		o.t.Send(to, batch)
		msgs = rest
	}
}

// addGroupMessages sends ready-made messages to node to.
func (o *outbox) addGroupMessages(to uint64, msgs []GroupMessage) {
	if o.t == nil {
		return
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.mu.closed {
		return
	}
	o.t.Send(to, msgs)
}

func (o *outbox) close() {
	o.mu.Lock()
	o.mu.closed = true
	o.mu.Unlock()
}
