package replication

import (
	"cmp"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/storage"
)

// Host is the multi-Raft host of one node: it owns the partition replicas
// of the node, the scheduler that drives their RawNodes, the durability
// pipeline and the Raft clock.
type Host struct {
	cfg     HostConfig
	logger  *slog.Logger
	metrics *metrics
	syncer  *storage.SyncGroup
	ownSync bool
	sched   *scheduler
	syncq   *syncQueue
	out     *outbox
	live    *liveness
	seq     atomic.Uint64
	// incarnation identifies this run of the host to other nodes.
	incarnation uint64

	retentionTicks int
	openLog        func(dir string, opts storage.Options) (logStore, error)

	openMu sync.Mutex // serializes OpenPartition/RemovePartition
	mu     struct {
		sync.RWMutex
		parts  map[uint64]*Partition
		list   []*Partition // cached values of parts, nil when stale
		closed bool
	}
	stop   chan struct{}
	tickWG sync.WaitGroup
	// drivers is held shared by a producer's goroutine while it runs a
	// pass and sync of its partition inline (Partition.drive); Close takes
	// it exclusively once the scheduler is stopping, so no inline pass is
	// still running (or starts) when the sync queue and outbox close.
	drivers sync.RWMutex
}

// NewHost starts a host. Close stops it.
func NewHost(cfg HostConfig) (*Host, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, logger: cfg.Logger, stop: make(chan struct{}), openLog: openStorageLog}
	h.mu.parts = make(map[uint64]*Partition)
	h.metrics = newMetrics(cfg.Registerer)
	h.registerMetrics()
	h.syncer = cfg.Storage.Syncer
	if h.syncer == nil {
		h.syncer = storage.NewSyncGroup(storage.WithSyncLogger(cfg.Logger), storage.WithSyncRegisterer(cfg.Registerer))
		h.ownSync = true
	}
	var b [8]byte
	_, _ = crand.Read(b[:])
	h.seq.Store(binary.BigEndian.Uint64(b[:]) >> 2) // random per run: proposal ids never repeat across restarts
	_, _ = crand.Read(b[:])
	h.incarnation = binary.BigEndian.Uint64(b[:])
	h.retentionTicks = max(1, int(cfg.RetentionCheck/cfg.TickInterval))
	h.sched = newScheduler(cfg.Workers, h.process)
	h.syncq = newSyncQueue(cfg.SyncWorkers)
	h.out = newOutbox(cfg.Transport)
	h.live = newLiveness()
	if cfg.Transport != nil {
		cfg.Transport.Register(cfg.NodeID, h.receive)
	}
	h.tickWG.Add(1)
	go h.tickLoop()
	return h, nil
}

func (h *Host) nextSeq() uint64 { return h.seq.Add(1) }

// NodeID is this host's node id.
func (h *Host) NodeID() uint64 { return h.cfg.NodeID }

func (h *Host) tickLoop() {
	defer h.tickWG.Done()
	t := time.NewTicker(h.cfg.TickInterval)
	defer t.Stop()
	var tick uint64
	var ids []uint64
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		tick++
		parts := h.partitionList()
		ids = ids[:0]
		maint := tick%uint64(h.retentionTicks) == 0
		for _, p := range parts {
			if maint || !p.quiesced.Load() {
				ids = append(ids, p.id)
			}
		}
		f := workTick
		if maint {
			f |= workMaint
		}
		h.sched.enqueueMany(ids, f)
		h.livenessTick(tick)
	}
}

// partitionList is a cached list of the open partitions.
func (h *Host) partitionList() []*Partition {
	h.mu.RLock()
	list := h.mu.list
	h.mu.RUnlock()
	if list != nil {
		return list
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.list == nil {
		h.mu.list = make([]*Partition, 0, len(h.mu.parts))
		for _, p := range h.mu.parts {
			h.mu.list = append(h.mu.list, p)
		}
	}
	return h.mu.list
}

func (h *Host) process(id uint64, f workFlags) func(inline bool) {
	h.mu.RLock()
	p := h.mu.parts[id]
	h.mu.RUnlock()
	if p != nil && p.handle(f) {
		return p.startSync
	}
	return nil
}

// receive is the transport's handler for messages to this node.
func (h *Host) receive(from uint64, msgs []GroupMessage) {
	now := time.Now()
	h.live.heard(from, now)
	for _, m := range msgs {
		if m.GroupID == livenessGroup {
			h.onLiveness(from, m.Message)
		}
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.mu.closed {
		return
	}
	for i := 0; i < len(msgs); {
		j := i + 1
		for j < len(msgs) && msgs[j].GroupID == msgs[i].GroupID {
			j++
		}
		if p := h.mu.parts[msgs[i].GroupID]; p != nil {
			p.mu.Lock()
			if len(p.mu.inbox) == 0 {
				p.mu.inboxAt = now
			}
			for _, m := range msgs[i:j] {
				p.mu.inbox = append(p.mu.inbox, m.Message)
				if m.Quiesce {
					p.mu.quiesceFrom, p.mu.quiesceTerm = from, m.Message.GetTerm()
				}
			}
			p.mu.Unlock()
			h.sched.enqueue(p.id, workMessages)
		}
		i = j
	}
}

// send hands a group's messages for other nodes to the outbox.
func (h *Host) send(group uint64, msgs []*raftpb.Message) {
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			nameRecipient(m)
		}
	}
	h.out.add(group, msgs)
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			// The in-process and gRPC transports hand the snapshot over
			// whole; report it done so raft resumes probing the follower.
			h.mu.RLock()
			p := h.mu.parts[group]
			h.mu.RUnlock()
			if p != nil {
				p.mu.Lock()
				p.mu.snapDone = append(p.mu.snapDone, m.GetTo())
				p.mu.Unlock()
				h.sched.enqueue(group, workMessages)
			}
		}
	}
}

// OpenPartition creates the partition replica or recovers it from its
// directory; opening an open partition returns it.
func (h *Host) OpenPartition(spec PartitionSpec) (*Partition, error) {
	if spec.GroupID == 0 || spec.Dir == "" || !filepath.IsLocal(spec.Dir) {
		return nil, fmt.Errorf("replication: partition spec needs a group id and a local dir: %+v", spec)
	}
	h.openMu.Lock()
	defer h.openMu.Unlock()
	h.mu.RLock()
	p, closed := h.mu.parts[spec.GroupID], h.mu.closed
	h.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if p != nil {
		if p.spec.Dir != spec.Dir {
			return nil, fmt.Errorf("%w: group %d in %q", ErrPartitionExists, spec.GroupID, p.spec.Dir)
		}
		return p, nil
	}
	dir := filepath.Join(h.cfg.DataDir, "partitions", spec.Dir)
	opts := h.cfg.Storage
	opts.Syncer = h.syncer
	// Entries come from raft's Ready and are never modified afterwards
	// (raft, the entry cache and the transport share them).
	opts.RetainData = true
	if spec.Config.SegmentBytes > 0 {
		opts.SegmentBytes = spec.Config.SegmentBytes
	}
	opts.Logger = h.logger.With("group", spec.GroupID)
	log, err := h.openLog(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("replication: open partition %d: %w", spec.GroupID, err)
	}
	p, err = newPartition(h, spec, dir, log)
	if err != nil {
		_ = log.Close()
		return nil, err
	}
	h.mu.Lock()
	h.mu.parts[spec.GroupID] = p
	h.mu.list = nil
	h.mu.Unlock()
	h.metrics.partitions.Inc()
	h.sched.enqueue(spec.GroupID, workReady)
	return p, nil
}

// Partition returns an open partition.
func (h *Host) Partition(groupID uint64) (*Partition, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	p, ok := h.mu.parts[groupID]
	return p, ok
}

// Partitions lists the open partitions.
func (h *Host) Partitions() []*Partition {
	h.mu.RLock()
	defer h.mu.RUnlock()
	ps := make([]*Partition, 0, len(h.mu.parts))
	for _, p := range h.mu.parts {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *Partition) int { return cmp.Compare(a.id, b.id) })
	return ps
}

// RemovePartition stops the replica and deletes its data.
func (h *Host) RemovePartition(groupID uint64) error {
	h.openMu.Lock()
	defer h.openMu.Unlock()
	h.mu.Lock()
	p := h.mu.parts[groupID]
	delete(h.mu.parts, groupID)
	h.mu.list = nil
	h.mu.Unlock()
	if p == nil {
		return nil
	}
	h.metrics.partitions.Dec()
	err := p.close()
	if rerr := h.removeAll(p.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

// removeAll deletes dir and its contents on the storage filesystem.
func (h *Host) removeAll(dir string) error {
	fs := h.cfg.Storage.FS
	if fs == nil {
		return os.RemoveAll(dir)
	}
	names, err := fs.ReadDir(dir)
	if err != nil {
		return nil // nothing there
	}
	for _, n := range names {
		path := filepath.Join(dir, n)
		if err := fs.Remove(path); err != nil {
			if err := h.removeAll(path); err != nil {
				return err
			}
		}
	}
	if err := fs.Remove(dir); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(dir))
}

// Close stops every partition (waiting producers get ErrUnknownOutcome or
// ErrClosed), persists their state, and waits for every goroutine.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		return nil
	}
	h.mu.closed = true
	parts := make([]*Partition, 0, len(h.mu.parts))
	for _, p := range h.mu.parts {
		parts = append(parts, p)
	}
	h.mu.Unlock()
	if h.cfg.Transport != nil {
		h.cfg.Transport.Register(h.cfg.NodeID, nil)
	}
	close(h.stop)
	h.tickWG.Wait()
	h.sched.stop()
	h.drivers.Lock() // wait out inline passes; later ones see stopping
	h.drivers.Unlock()
	h.syncq.close()
	h.out.close()
	var errs []error
	for _, p := range parts {
		errs = append(errs, p.close())
	}
	h.mu.Lock()
	h.mu.parts = map[uint64]*Partition{}
	h.mu.list = nil
	h.mu.Unlock()
	if h.ownSync {
		errs = append(errs, h.syncer.Close())
	}
	h.metrics.unregister()
	return errors.Join(errs...)
}

// maxUncommittedBytes bounds a leader's uncommitted tail per partition;
// beyond it writes fail with ErrThrottled (bounded memory when a quorum
// or the disk is slow).
const maxUncommittedBytes = 32 << 20

// newPartition recovers or bootstraps the replica's Raft state from its log.
func newPartition(h *Host, spec PartitionSpec, dir string, log logStore) (*Partition, error) {
	p := &Partition{h: h, id: spec.GroupID, spec: spec, dir: dir, log: log}
	p.mu.cfg = spec.Config
	p.mu.pending = make(map[uint64]*proposal)
	p.mu.changed = make(chan struct{})
	p.mu.readyCh = make(chan struct{})
	p.syncMu.idle = sync.NewCond(&p.syncMu.Mutex)

	hs, cs, err := log.InitialState()
	if err != nil {
		return nil, err
	}
	snap, err := log.Snapshot()
	if err != nil {
		return nil, err
	}
	last, err := log.LastIndex()
	if err != nil {
		return nil, err
	}
	sm := stateMachine{producers: producerTable{}}
	if !raft.IsEmptySnap(snap) {
		ps, err := decodeSnapshot(snap.GetData())
		if err != nil {
			return nil, fmt.Errorf("replication: partition %d: %w", spec.GroupID, err)
		}
		md := snap.GetMetadata()
		sm.applied, sm.appliedTerm, sm.snapIndex = md.GetIndex(), md.GetTerm(), md.GetIndex()
		sm.producers, sm.clock, sm.lastSweep = ps.Producers, ps.Clock, ps.LastSweep
	}
	if sm.nextOffset, err = log.OffsetAt(sm.applied + 1); err != nil {
		return nil, fmt.Errorf("replication: partition %d offset at %d: %w", spec.GroupID, sm.applied+1, err)
	}
	// A new group is bootstrapped with configuration entries in its log
	// (as raft's Bootstrap does), so a replica added later learns the
	// initial voters by replaying the log. The ConfState is saved first so
	// a crash before those entries apply still restarts with the voters.
	bootstrap := len(cs.GetVoters()) == 0 && len(cs.GetLearners()) == 0 && last == 0 &&
		raft.IsEmptySnap(snap) && slices.Contains(spec.Voters, h.cfg.NodeID) && !spec.Join
	if bootstrap {
		h.logger.Info("creating partition group", "group", spec.GroupID, "voters", spec.Voters)
		cs = &raftpb.ConfState{Voters: slices.Clone(spec.Voters)}
		if err := log.SaveState(nil, cs); err != nil {
			return nil, err
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        h.cfg.NodeID,
		ElectionTick:              h.cfg.ElectionTicks,
		HeartbeatTick:             h.cfg.HeartbeatTicks,
		Storage:                   raftStorage{logStore: log, p: p},
		Applied:                   sm.applied,
		AsyncStorageWrites:        true,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: maxUncommittedBytes,
		MaxInflightMsgs:           256,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    &raftLogger{l: h.logger.With("group", spec.GroupID)},
	})
	if err != nil {
		return nil, err
	}
	if bootstrap {
		peers := make([]raft.Peer, len(spec.Voters))
		for i, id := range spec.Voters {
			peers[i] = raft.Peer{ID: id}
		}
		if err := rn.Bootstrap(peers); err != nil {
			return nil, err
		}
	}
	p.raftMu.rn = rn
	p.raftMu.sm = sm
	p.raftMu.cs = cs
	if hs != nil {
		p.raftMu.hs = hardState{term: hs.GetTerm(), vote: hs.GetVote(), commit: hs.GetCommit()}
		p.raftMu.saved = p.raftMu.hs
		p.raftMu.term = hs.GetTerm()
	}
	p.syncMu.appended, p.syncMu.durable = last, last
	p.mu.hw, p.mu.start = sm.nextOffset, log.StartOffset()
	p.setMembersLocked(cs)
	if v := cs.GetVoters(); len(v) == 1 && v[0] == h.cfg.NodeID {
		_ = rn.Campaign() // a group of one need not wait for an election timeout
	}
	return p, nil
}

// close stops the replica: no more passes, pending requests answered,
// HardState saved, log closed.
func (p *Partition) close() error {
	p.closeOnce.Do(func() { p.closeErr = p.doClose() })
	return p.closeErr
}

func (p *Partition) doClose() error {
	p.raftMu.Lock()
	var err error
	if p.raftMu.rn != nil {
		if p.raftMu.hs.commit > p.raftMu.saved.commit {
			err = p.saveHardStateRaftMuLocked()
		}
		if p.raftMu.isLeader {
			p.h.metrics.leaders.Dec()
		}
		p.raftMu.rn = nil
	}
	p.raftMu.Unlock()
	p.waitSyncIdle()
	p.mu.Lock()
	if !p.mu.closed {
		p.mu.closed = true
		p.resetLeadershipLocked(false, ErrClosed)
		close(p.mu.changed)
		p.mu.changed = make(chan struct{})
	}
	p.mu.Unlock()
	return errors.Join(err, p.log.Close())
}
