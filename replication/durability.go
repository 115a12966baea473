package replication

import (
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// The durability pipeline.
//
// A scheduler worker appends entries to a partition's log (a write to the
// page cache, cheap) and queues the MsgStorageAppend's responses as a
// syncItem. One goroutine at a time owns a partition's pipeline and makes
// its log durable: it takes every item queued, calls Log.Sync (concurrent
// syncs of many partitions merge into one group commit in the shared
// storage.SyncGroup), then delivers the responses — to the leader on other
// nodes (MsgAppResp), to acks=1 producers, and to raft on this node (its
// own append acknowledgement, which lets a leader count itself and
// commit) — and repeats while more was queued meanwhile.
//
// The owner is the scheduler worker whose pass queued the first item, once
// it released the group, when no other group waits for a worker (so a
// one-voter group's produce costs no handoff between append and fsync);
// otherwise a sync worker from a pool. The local acknowledgement is stepped
// by the owner itself when no pass of the group runs (TryLock of raftMu):
// that pass commits, applies and answers acks=all producers, and appends
// proposals that queued during the fsync, whose sync the owner runs next.
// A slow fsync holds up only its own partitions' acknowledgements; the
// other scheduler workers keep stepping and appending every group
// meanwhile, including the one being synced.
//
// Invariant: an entry is never acknowledged to raft (and so never counted
// toward a commit or an acks=all answer) before Sync covering it returned.
// At most one sync per partition is in flight, so responses are delivered
// in the order raft produced them. The responses of an append that wrote
// no entries skip the pipeline only while it is empty and the whole log
// durable (deliverDurableRaftMuLocked), so both hold for them too.

type syncItem struct {
	resps []*raftpb.Message
	acks1 []*proposal
	// received: when a follower received the entries this item makes
	// durable (zero otherwise), for the follower append latency.
	received time.Time
}

// deliverDurableRaftMuLocked delivers at once the responses of a storage
// append that wrote no entries (a new commit index, or a term or vote
// already saved durably by the pass), when they vouch for nothing that is
// not durable yet: no sync is queued or running (so no earlier response
// waits, and order is kept) and every appended entry is durable. Remote
// responses leave with the pass's messages, local ones are stepped after
// its Ready. Otherwise it reports false and they take the pipeline like
// any other item. This saves a pipeline round (and often a handoff to a
// sync worker) for the commit-only append that follows every proposal on
// every replica.
func (p *Partition) deliverDurableRaftMuLocked(resps []*raftpb.Message) bool {
	if len(resps) == 0 {
		return true
	}
	p.syncMu.Lock()
	ok := !p.syncMu.syncing && len(p.syncMu.queued) == 0 && p.syncMu.durable >= p.syncMu.appended
	p.syncMu.Unlock()
	if !ok {
		return false
	}
	p.mu.Lock()
	failed := p.mu.failed != nil
	p.mu.Unlock()
	if failed {
		return false // a failed log acknowledges nothing more
	}
	for _, m := range resps {
		if m.GetTo() == p.h.cfg.NodeID {
			p.raftMu.local = append(p.raftMu.local, m)
		} else {
			p.raftMu.out = append(p.raftMu.out, m)
		}
	}
	return true
}

// noteAppended records entries [first, last] appended; an append that
// rewrote entries lowers the durable mark.
func (p *Partition) noteAppended(first, last uint64) {
	p.syncMu.Lock()
	if first <= p.syncMu.appended {
		p.syncMu.gen++
		if p.syncMu.durable >= first {
			p.syncMu.durable = first - 1
		}
	}
	p.syncMu.appended = last
	p.syncMu.Unlock()
}

// queueSyncRaftMuLocked queues a sync item; when no sync of the
// partition is queued or running, the pass reports startSync and its
// caller starts the pipeline (startSync).
func (p *Partition) queueSyncRaftMuLocked(it syncItem) {
	p.syncMu.Lock()
	p.syncMu.queued = append(p.syncMu.queued, it)
	start := !p.syncMu.syncing
	p.syncMu.syncing = true
	p.syncMu.Unlock()
	if start {
		p.raftMu.startSync = true
	}
}

// maxSyncRounds bounds the syncs one goroutine runs back to back for a
// partition before it hands the partition to the sync queue.
const maxSyncRounds = 8

// startSync runs the partition's durability pipeline on this goroutine
// (a scheduler worker with nothing else to do: inline) or on a sync
// worker.
func (p *Partition) startSync(inline bool) {
	if inline {
		p.syncRounds()
		return
	}
	p.h.syncq.push(p)
}

// syncRounds syncs until nothing is queued (or maxSyncRounds passed,
// then the rest goes to a sync worker). The caller owns the pipeline
// (syncMu.syncing set by whoever queued the first item).
func (p *Partition) syncRounds() {
	for i := 1; ; i++ {
		p.syncOnce()
		p.syncMu.Lock()
		again := len(p.syncMu.queued) > 0
		if !again {
			p.syncMu.syncing = false
			p.syncMu.idle.Broadcast()
		}
		p.syncMu.Unlock()
		if !again {
			return
		}
		if i >= maxSyncRounds {
			p.h.syncq.push(p)
			return
		}
	}
}

// syncOnce makes everything queued so far durable, then delivers it.
func (p *Partition) syncOnce() {
	p.syncMu.Lock()
	items := p.syncMu.queued
	p.syncMu.queued = nil
	target, gen := p.syncMu.appended, p.syncMu.gen
	p.syncMu.Unlock()

	start := time.Now()
	err := p.log.Sync()
	p.h.metrics.syncLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		p.h.logger.Error("log sync failed", "group", p.id, "err", err)
		p.mu.Lock()
		if p.mu.failed == nil {
			p.mu.failed = err
		}
		for _, it := range items {
			for _, pr := range it.acks1 {
				pr.finishLocked(ProduceResult{}, ErrUnknownOutcome)
			}
		}
		p.mu.Unlock()
		// Responses are withheld: raft never learns these entries are
		// durable, so this replica cannot acknowledge them.
		return
	}

	p.syncMu.Lock()
	if gen == p.syncMu.gen && target > p.syncMu.durable {
		p.syncMu.durable = target
	}
	p.syncMu.Unlock()

	var local []*raftpb.Message
	var remote []*raftpb.Message
	for _, it := range items {
		for _, m := range it.resps {
			if m.GetTo() == p.h.cfg.NodeID {
				local = append(local, m)
			} else {
				remote = append(remote, m)
			}
		}
	}
	if len(remote) > 0 {
		p.h.send(p.id, remote)
		now := time.Now()
		for _, it := range items {
			if !it.received.IsZero() {
				p.h.metrics.followerAppend.Observe(now.Sub(it.received).Seconds())
			}
		}
	}
	p.resolveAcks1(items)
	if len(local) > 0 {
		p.deliverLocal(local)
	}
}

func (p *Partition) resolveAcks1(items []syncItem) {
	var acks []*proposal
	for _, it := range items {
		acks = append(acks, it.acks1...)
	}
	if len(acks) == 0 {
		return
	}
	offs := make([]uint64, len(acks))
	for i, pr := range acks {
		offs[i], _ = p.log.OffsetAt(pr.index)
	}
	p.mu.Lock()
	for i, pr := range acks {
		pr.finishLocked(ProduceResult{BaseOffset: offs[i], LogAppendTime: pr.res.LogAppendTime}, nil)
	}
	p.mu.Unlock()
}

// waitSyncIdle blocks until no sync of the partition is queued or running.
func (p *Partition) waitSyncIdle() {
	p.syncMu.Lock()
	for p.syncMu.syncing {
		p.syncMu.idle.Wait()
	}
	p.syncMu.Unlock()
}

// deliverLocal queues messages for this node's raft and runs a pass for
// them at once when no pass of the group is running (the raft clock of a
// group of one voter: its own append acknowledgement commits, the same
// pass applies and answers the producers, and proposals queued meanwhile
// are appended — no handoff to a scheduler worker); else the scheduler
// runs it. Called by the pipeline's owner, so a sync this pass queues is
// run by syncRounds.
func (p *Partition) deliverLocal(msgs []*raftpb.Message) {
	p.mu.Lock()
	if len(p.mu.inbox) == 0 {
		p.mu.inboxAt = time.Now()
	}
	p.mu.inbox = append(p.mu.inbox, msgs...)
	p.mu.Unlock()
	if !p.h.sched.stopping.Load() && p.raftMu.TryLock() {
		start := p.handleRaftMuLocked(workMessages)
		p.raftMu.Unlock()
		if start { // not expected: the pipeline is ours until syncRounds returns
			p.h.syncq.push(p)
		}
		return
	}
	p.h.sched.enqueue(p.id, workMessages)
}

// syncQueue feeds partitions to the sync workers.
type syncQueue struct {
	mu struct {
		sync.Mutex
		cond   sync.Cond
		q      []*Partition
		closed bool
	}
	wg sync.WaitGroup
}

func newSyncQueue(workers int) *syncQueue {
	q := &syncQueue{}
	q.mu.cond.L = &q.mu.Mutex
	q.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go q.worker()
	}
	return q
}

func (q *syncQueue) push(p *Partition) {
	q.mu.Lock()
	q.mu.q = append(q.mu.q, p)
	q.mu.cond.Signal()
	q.mu.Unlock()
}

func (q *syncQueue) worker() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		for len(q.mu.q) == 0 && !q.mu.closed {
			q.mu.cond.Wait()
		}
		if len(q.mu.q) == 0 {
			q.mu.Unlock()
			return
		}
		p := q.mu.q[0]
		q.mu.q[0] = nil
		q.mu.q = q.mu.q[1:]
		q.mu.Unlock()
		p.syncRounds()
	}
}

// close lets the workers drain the queue, then stops them and waits.
func (q *syncQueue) close() {
	q.mu.Lock()
	q.mu.closed = true
	q.mu.cond.Broadcast()
	q.mu.Unlock()
	q.wg.Wait()
}
