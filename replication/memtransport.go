package replication

import (
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// MemNetwork is an in-process network of hosts for tests: each directed
// link between two nodes is an ordered queue that can be cut, made lossy
// or slow. Messages are deep-copied so no memory is shared between nodes.
type MemNetwork struct {
	mu struct {
		sync.Mutex
		handlers map[uint64]MessageHandler
		links    map[[2]uint64]*memLink
		closed   bool
	}
	wg sync.WaitGroup
}

type memLink struct {
	ch chan memDelivery
	// guarded by MemNetwork.mu
	cut   bool
	drop  float64
	delay time.Duration
}

type memDelivery struct {
	at   time.Time
	msgs []GroupMessage
}

// NewMemNetwork returns an empty network. Close stops its goroutines.
func NewMemNetwork() *MemNetwork {
	n := &MemNetwork{}
	n.mu.handlers = make(map[uint64]MessageHandler)
	n.mu.links = make(map[[2]uint64]*memLink)
	return n
}

// Transport returns the transport endpoint of node id.
func (n *MemNetwork) Transport(id uint64) Transport { return memTransport{n: n, from: id} }

type memTransport struct {
	n    *MemNetwork
	from uint64
}

func (t memTransport) Register(id uint64, h MessageHandler) {
	t.n.mu.Lock()
	defer t.n.mu.Unlock()
	if h == nil {
		delete(t.n.mu.handlers, id)
	} else {
		t.n.mu.handlers[id] = h
	}
}

func (t memTransport) Send(to uint64, msgs []GroupMessage) { t.n.send(t.from, to, msgs) }

// linkLocked returns the directed link from -> to, starting its delivery
// goroutine on first use.
func (n *MemNetwork) linkLocked(from, to uint64) *memLink {
	k := [2]uint64{from, to}
	l := n.mu.links[k]
	if l == nil {
		l = &memLink{ch: make(chan memDelivery, 4096)}
		n.mu.links[k] = l
		n.wg.Add(1)
		go n.deliver(from, to, l)
	}
	return l
}

func (n *MemNetwork) send(from, to uint64, msgs []GroupMessage) {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return
	}
	l := n.linkLocked(from, to)
	if l.cut {
		n.mu.Unlock()
		return
	}
	drop, delay := l.drop, l.delay
	n.mu.Unlock()

	cp := make([]GroupMessage, 0, len(msgs))
	for _, m := range msgs {
		if drop > 0 && rand.Float64() < drop {
			continue
		}
		cp = append(cp, GroupMessage{GroupID: m.GroupID, Quiesce: m.Quiesce, Message: proto.Clone(m.Message).(*raftpb.Message)})
	}
	if len(cp) == 0 {
		return
	}
	d := memDelivery{msgs: cp}
	if delay > 0 {
		d.at = time.Now().Add(delay)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return
	}
	select {
	case l.ch <- d:
	default: // queue full: lost, like a congested connection
	}
}

func (n *MemNetwork) deliver(from, to uint64, l *memLink) {
	defer n.wg.Done()
	for d := range l.ch {
		if !d.at.IsZero() {
			time.Sleep(time.Until(d.at))
		}
		n.mu.Lock()
		h, cut := n.mu.handlers[to], l.cut
		n.mu.Unlock()
		if h != nil && !cut {
			h(from, d.msgs)
		}
	}
}

func (n *MemNetwork) updateLink(a, b uint64, f func(l *memLink)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return
	}
	f(n.linkLocked(a, b))
	f(n.linkLocked(b, a))
}

// Cut drops everything between a and b in both directions until Heal.
func (n *MemNetwork) Cut(a, b uint64) { n.updateLink(a, b, func(l *memLink) { l.cut = true }) }

// Heal restores the links between a and b (no loss, no delay).
func (n *MemNetwork) Heal(a, b uint64) {
	n.updateLink(a, b, func(l *memLink) { l.cut, l.drop, l.delay = false, 0, 0 })
}

// SetDrop makes the links between a and b lose each message with
// probability p.
func (n *MemNetwork) SetDrop(a, b uint64, p float64) {
	n.updateLink(a, b, func(l *memLink) { l.drop = p })
}

// SetDelay delays every message between a and b by d (order is kept).
func (n *MemNetwork) SetDelay(a, b uint64, d time.Duration) {
	n.updateLink(a, b, func(l *memLink) { l.delay = d })
}

// Isolate cuts node a from every node in others.
func (n *MemNetwork) Isolate(a uint64, others ...uint64) {
	for _, b := range others {
		if b != a {
			n.Cut(a, b)
		}
	}
}

// HealAll restores every link.
func (n *MemNetwork) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.mu.links {
		l.cut, l.drop, l.delay = false, 0, 0
	}
}

// Close stops the delivery goroutines and waits for them.
func (n *MemNetwork) Close() {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return
	}
	n.mu.closed = true
	for _, l := range n.mu.links {
		close(l.ch)
	}
	n.mu.Unlock()
	n.wg.Wait()
}
