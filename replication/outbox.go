package replication

import (
	"sync"

	"go.etcd.io/raft/v3/raftpb"
)

// outbox batches messages for other nodes across groups: groups add their
// messages, one goroutine hands each destination's batch to the transport.
// While a Send is in progress further messages accumulate, so the batch
// size grows with load.
type outbox struct {
	t    Transport
	wake chan struct{}
	mu   struct {
		sync.Mutex
		pending map[uint64][]GroupMessage
		closed  bool
	}
	wg sync.WaitGroup
}

func newOutbox(t Transport) *outbox {
	o := &outbox{t: t, wake: make(chan struct{}, 1)}
	o.mu.pending = make(map[uint64][]GroupMessage)
	if t != nil {
		o.wg.Add(1)
		go o.run()
	}
	return o
}

func (o *outbox) add(group uint64, msgs []*raftpb.Message) {
	if o.t == nil {
		return // single node: no peers to reach
	}
	o.mu.Lock()
	if o.mu.closed {
		o.mu.Unlock()
		return
	}
	for _, m := range msgs {
		to := m.GetTo()
		o.mu.pending[to] = append(o.mu.pending[to], GroupMessage{GroupID: group, Message: m})
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// addGroupMessages queues ready-made messages for node to.
func (o *outbox) addGroupMessages(to uint64, msgs []GroupMessage) {
	if o.t == nil {
		return
	}
	o.mu.Lock()
	if o.mu.closed {
		o.mu.Unlock()
		return
	}
	o.mu.pending[to] = append(o.mu.pending[to], msgs...)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) run() {
	defer o.wg.Done()
	for range o.wake {
		o.mu.Lock()
		var batch map[uint64][]GroupMessage
		closed := o.mu.closed
		if len(o.mu.pending) > 0 {
			batch = o.mu.pending
			o.mu.pending = make(map[uint64][]GroupMessage, len(batch))
		}
		o.mu.Unlock()
		for to, msgs := range batch {
			o.t.Send(to, msgs)
		}
		if closed {
			return
		}
	}
}

func (o *outbox) close() {
	if o.t == nil {
		return
	}
	o.mu.Lock()
	o.mu.closed = true
	o.mu.Unlock()
	close(o.wake) // run drains what is left and returns
	o.wg.Wait()
}
