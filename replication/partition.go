package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/storage"
)

// Partition is one replica of a partition: a Raft group whose log is a
// storage.Log and whose state machine assigns offsets, advances the high
// watermark and remembers idempotent producers. All methods are safe for
// concurrent use.
type Partition struct {
	h    *Host
	id   uint64
	spec PartitionSpec
	dir  string
	log  logStore

	closeOnce sync.Once
	closeErr  error

	// quiesced: the group does not tick (quiesce.go).
	quiesced atomic.Bool

	// raftMu serializes the Raft state: held by the scheduler worker
	// processing this group, and by Close. Lock order: raftMu before mu,
	// raftMu before syncMu.
	raftMu struct {
		sync.Mutex
		rn *raft.RawNode // nil once closed
		sm stateMachine
		// hs is the latest HardState raft asked to persist; saved is
		// the one last written (Term/Vote durably before responses,
		// Commit lazily, clamped to the durable log).
		hs, saved hardState
		cs        *raftpb.ConfState
		isLeader  bool
		lead      uint64
		confIndex uint64 // index of the last membership change appended
		idleTicks int    // leader ticks with nothing in flight
		term      uint64
		out       []*raftpb.Message // remote messages of this pass
		// local: responses to this node's raft from an append that wrote
		// nothing, already durable (deliverDurableRaftMuLocked); stepped
		// right after the Ready that produced them.
		local []*raftpb.Message
		// startSync: this pass queued the first sync of an idle
		// durability pipeline (handle's caller starts it).
		startSync bool
		cache     entryCache // appended entries not yet applied
		// inboxAt: when the oldest message this pass steps arrived
		// (zero when it steps none).
		inboxAt time.Time
	}

	// mu guards what client goroutines read and the proposal queues.
	mu struct {
		sync.Mutex
		closed bool
		failed error
		cfg    PartitionConfig

		leader   uint64
		isLeader bool
		ready    bool          // leader and applied its own term's first entry
		readyCh  chan struct{} // closed when ready or leadership changes
		hw       uint64
		start    uint64
		changed  chan struct{}

		inbox []*raftpb.Message // stepped by the next pass
		// inboxAt: when the oldest message of inbox arrived.
		inboxAt  time.Time
		snapDone []uint64 // followers a snapshot was handed to
		ops      []func(rn *raft.RawNode)
		members  []uint64 // voters and learners
		// quiesceFrom/Term: a quiesce heartbeat arrived from that leader.
		quiesceFrom, quiesceTerm uint64
		props                    []*proposal // queued, not yet proposed
		pending                  map[uint64]*proposal
		// producers is the leader's proposal-time view: applied
		// producer state plus in-flight batches. nil when not ready.
		producers producerTable
		viewStale bool
	}

	// syncMu guards the durability pipeline (see durability.go).
	syncMu struct {
		sync.Mutex
		queued   []syncItem
		syncing  bool
		appended uint64 // last index appended to the log
		durable  uint64 // last index known durable
		gen      uint64 // bumped when an append truncates the log
		idle     *sync.Cond
	}
}

// proposal is a client request waiting for its entry.
type proposal struct {
	seq     uint64
	data    []byte
	acks    Acks
	pid     int64 // -1 unless idempotent
	start   time.Time
	deleteR bool
	cc      *raftpb.ConfChangeV2 // membership change

	// guarded by Partition.mu
	proposed bool
	canceled bool
	index    uint64
	done     chan struct{}
	res      ProduceResult
	newStart uint64
	err      error
}

// finishLocked resolves the proposal once; p.mu must be held.
func (pr *proposal) finishLocked(res ProduceResult, err error) {
	select {
	case <-pr.done:
		return
	default:
	}
	pr.res, pr.err = res, err
	close(pr.done)
}

// GroupID is the Raft group id of the partition.
func (p *Partition) GroupID() uint64 { return p.id }

// Spec is the spec the partition was opened with.
func (p *Partition) Spec() PartitionSpec { return p.spec }

// Produce appends a batch. See Acks for when it returns (with AcksNone
// the BaseOffset is not known and reported as 0). Errors that mean the
// batch was definitely not written: *NotLeaderError, ErrOutOfOrderSequence,
// ErrProducerFenced, ErrInvalidBatch, ErrClosed, and a bare context error
// (the context ended before the batch was proposed). ErrUnknownOutcome
// (wrapping the context error when the context ended) means it was
// proposed and may or may not be in the log.
func (p *Partition) Produce(ctx context.Context, b ProduceBatch, acks Acks) (ProduceResult, error) {
	f, err := p.ProposeInline(ctx, b, acks) // the caller waits anyway
	if err != nil {
		return ProduceResult{}, err
	}
	return f.Wait(ctx)
}

// PendingProduce is a batch queued by Propose; Wait gives its outcome.
type PendingProduce struct {
	p   *Partition
	pr  *proposal // nil: answered at once (a retry of a batch already in the log)
	own bool      // false: a retry sharing the fate of an in-flight batch
	res ProduceResult
}

// Propose queues a batch for the log and returns without waiting for it:
// batches proposed one after the other (by one goroutine, or in any order
// the caller serializes) take offsets in that order, so a caller can keep
// many batches of one partition in flight and still know their order. Its
// errors are those of Produce that mean the batch was definitely not
// written; Wait gives the rest of the outcome.
func (p *Partition) Propose(ctx context.Context, b ProduceBatch, acks Acks) (*PendingProduce, error) {
	return p.proposeBatch(ctx, &b, acks, false)
}

// ProposeInline is Propose for a caller that will only wait for the
// outcome next: when no pass of the group is running, the caller's
// goroutine runs it — appends the batch and, when no sync of the
// partition is in flight, makes it durable and applies it — so a
// one-voter group has answered the batch when ProposeInline returns,
// without handing it to another goroutine. Otherwise (or for a group with
// other voters, whose commit waits for them) it is Propose. With
// AcksNone it is Propose: such a caller does not wait for the sync.
func (p *Partition) ProposeInline(ctx context.Context, b ProduceBatch, acks Acks) (*PendingProduce, error) {
	return p.proposeBatch(ctx, &b, acks, acks != AcksNone)
}

func (p *Partition) proposeBatch(ctx context.Context, b *ProduceBatch, acks Acks, inline bool) (*PendingProduce, error) {
	if b.Records == 0 || len(b.Data) == 0 {
		return nil, ErrInvalidBatch
	}
	pr, dup, err := p.propose(ctx, b, acks, inline)
	if err != nil {
		return nil, err
	}
	f := &PendingProduce{p: p, pr: pr, own: true}
	if dup != nil {
		if dup.prop == nil {
			f.pr, f.res = nil, ProduceResult{BaseOffset: dup.Offset, LogAppendTime: -1}
			return f, nil
		}
		f.pr, f.own = dup.prop, false // a retry of an in-flight batch shares its fate
		return f, nil
	}
	if inline {
		p.drive()
	}
	return f, nil
}

// drive runs a pass for proposals queued without a scheduler wake-up
// (ProposeInline) on the calling goroutine, and the sync it starts.
func (p *Partition) drive() {
	p.h.drivers.RLock()
	defer p.h.drivers.RUnlock()
	if p.h.sched.stopping.Load() || !p.raftMu.TryLock() {
		p.h.sched.enqueue(p.id, workPropose)
		return
	}
	start := p.handleRaftMuLocked(workPropose)
	p.raftMu.Unlock()
	if start {
		p.syncRounds()
	}
}

// Wait blocks until the batch reaches the durability its acks ask for,
// with Produce's results and errors. When ctx ends before the batch was
// handed to Raft it is withdrawn (a bare context error: not written).
func (f *PendingProduce) Wait(ctx context.Context) (ProduceResult, error) {
	if f.pr == nil {
		return f.res, nil
	}
	return f.p.wait(ctx, f.pr, f.own)
}

// Done reports whether the outcome is known: Wait returns at once.
func (f *PendingProduce) Done() bool {
	if f.pr == nil {
		return true
	}
	select {
	case <-f.pr.done:
		return true
	default:
		return false
	}
}

// lockReady blocks while this replica is the leader but not yet ready.
// It returns with p.mu held when ready, else an error without it.
func (p *Partition) lockReady(ctx context.Context) error {
	p.mu.Lock()
	for {
		if p.mu.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		if p.mu.failed != nil {
			err := p.mu.failed
			p.mu.Unlock()
			return err
		}
		if !p.mu.isLeader {
			l := p.mu.leader
			p.mu.Unlock()
			return &NotLeaderError{Leader: l}
		}
		if p.mu.ready {
			return nil
		}
		ch := p.mu.readyCh
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
}

func (p *Partition) propose(ctx context.Context, b *ProduceBatch, acks Acks, inline bool) (*proposal, *batchMeta, error) {
	data := encodeRecords(p.h.cfg.NodeID, 0, b, -1, 0) // copy outside the lock; stamped below
	if err := p.lockReady(ctx); err != nil {
		return nil, nil, err
	}
	idem := b.ProducerID >= 0
	for idem && p.mu.viewStale {
		// A proposal that never reached the log left the view; wait
		// for the worker to rebuild it from the applied state.
		ch := p.mu.readyCh
		p.mu.Unlock()
		p.h.sched.enqueue(p.id, workReady)
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if err := p.lockReady(ctx); err != nil {
			return nil, nil, err
		}
	}
	defer p.mu.Unlock()
	if idem {
		switch err := p.mu.producers.check(b.ProducerID, b.ProducerEpoch, b.BaseSequence, b.Records); {
		case err == nil:
		case errors.As(err, new(*duplicateError)):
			var de *duplicateError
			errors.As(err, &de)
			return nil, &de.b, nil
		default:
			return nil, nil, err
		}
	}
	now := p.h.cfg.Now().UnixMilli()
	lat := int64(-1)
	if p.mu.cfg.LogAppendTime {
		lat = now
	}
	seq := p.h.nextSeq()
	stampRecords(data, seq, lat, now)
	pr := &proposal{
		seq:   seq,
		data:  data,
		acks:  acks,
		pid:   -1,
		start: time.Now(),
		done:  make(chan struct{}),
	}
	pr.res.LogAppendTime = lat
	if idem {
		pr.pid = b.ProducerID
		p.mu.producers.record(b.ProducerID, b.ProducerEpoch, b.BaseSequence, b.Records, now, batchMeta{prop: pr})
	}
	if inline {
		p.queueLocked(pr) // the caller drives it
	} else {
		p.enqueueLocked(pr)
	}
	return pr, nil, nil
}

func (p *Partition) enqueueLocked(pr *proposal) {
	p.queueLocked(pr)
	p.h.sched.enqueue(p.id, workPropose)
}

func (p *Partition) queueLocked(pr *proposal) {
	p.mu.props = append(p.mu.props, pr)
	p.mu.pending[pr.seq] = pr
}

// wait blocks until pr reaches the durability its acks ask for (for
// AcksNone the worker finishes it once proposed). When ctx ends first, a
// proposal not yet handed to raft is withdrawn by its owner (a definite
// failure); otherwise the outcome is unknown.
func (p *Partition) wait(ctx context.Context, pr *proposal, own bool) (ProduceResult, error) {
	select {
	case <-pr.done:
		return pr.res, pr.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-pr.done:
		return pr.res, pr.err
	default:
	}
	if !pr.proposed && own {
		pr.canceled = true
		delete(p.mu.pending, pr.seq)
		p.mu.viewStale = p.mu.viewStale || pr.pid >= 0
		return ProduceResult{}, ctx.Err()
	}
	return ProduceResult{}, fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
}

// Read returns batches from offset, bounded by the high watermark and
// maxBytes (at least one batch when any is readable). Reading at the high
// watermark returns nothing; past it, *storage.OffsetOutOfRangeError.
// Batch.Data is the stored batch bytes.
func (p *Partition) Read(offset uint64, maxBytes int) ([]storage.Batch, error) {
	return p.readCommitted(offset, nil, func(hw uint64) ([]storage.Batch, error) {
		return p.log.Read(offset, hw, maxBytes)
	})
}

// HighWatermark is the offset after the last committed and applied record.
func (p *Partition) HighWatermark() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.hw
}

// StartOffset is the log start offset.
func (p *Partition) StartOffset() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.start
}

// Changed returns a channel closed when the high watermark or the start
// offset next moves. Take a fresh one after each wake-up.
func (p *Partition) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.changed
}

// OffsetForTime is the first offset of the first batch with a max
// timestamp at or after ts (ok=false when none, below the high watermark).
func (p *Partition) OffsetForTime(ts int64) (uint64, bool, error) {
	off, ok, err := p.log.OffsetForTime(ts)
	if err != nil || !ok {
		return off, ok, err
	}
	if hw := p.HighWatermark(); off >= hw {
		return 0, false, nil
	}
	return off, true, nil
}

// DeleteRecords moves the log start offset to before (Kafka's
// DeleteRecords), replicated through the log. before must not exceed the
// high watermark.
func (p *Partition) DeleteRecords(ctx context.Context, before uint64) (uint64, error) {
	if err := p.lockReady(ctx); err != nil {
		return 0, err
	}
	if before > p.mu.hw {
		err := &storage.OffsetOutOfRangeError{Offset: before, Start: p.mu.start, End: p.mu.hw}
		p.mu.Unlock()
		return 0, err
	}
	if before <= p.mu.start {
		s := p.mu.start
		p.mu.Unlock()
		return s, nil
	}
	seq := p.h.nextSeq()
	pr := &proposal{seq: seq, data: encodeDeleteRecords(p.h.cfg.NodeID, seq, before), acks: AcksAll,
		pid: -1, start: time.Now(), deleteR: true, done: make(chan struct{})}
	p.enqueueLocked(pr)
	p.mu.Unlock()
	if _, err := p.wait(ctx, pr, true); err != nil {
		return 0, err
	}
	return p.StartOffset(), nil
}

// UpdateConfig changes the partition's configuration. SegmentBytes takes
// effect when the partition is next opened.
func (p *Partition) UpdateConfig(cfg PartitionConfig) {
	p.mu.Lock()
	p.mu.cfg = cfg
	p.mu.Unlock()
}

// Leader is the node id of the current leader (0 = unknown).
func (p *Partition) Leader() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.leader
}

// Ready reports whether this replica leads the group and takes writes
// without waiting (it applied the first entry of its own term).
func (p *Partition) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.isLeader && p.mu.ready && !p.mu.viewStale && p.mu.failed == nil && !p.mu.closed
}

// IsLeader reports whether this replica leads the group.
func (p *Partition) IsLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.isLeader
}

// LogSize is the bytes the partition's log takes on disk.
func (p *Partition) LogSize() int64 { return p.log.Size() }

// publishLocked moves the high watermark and start offset, waking Changed
// waiters when either moved. p.mu must be held.
func (p *Partition) publishLocked(hw, start uint64) {
	if hw == p.mu.hw && start == p.mu.start {
		return
	}
	p.mu.hw, p.mu.start = hw, start
	close(p.mu.changed)
	p.mu.changed = make(chan struct{})
}
