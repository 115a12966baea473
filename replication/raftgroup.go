package replication

import (
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/storage"
)

// stateMachine is the applied state of a partition (guarded by raftMu).
type stateMachine struct {
	applied     uint64
	appliedTerm uint64
	nextOffset  uint64 // offset after the last applied record
	producers   producerTable
	snapIndex   uint64 // index of the latest snapshot
	clock       int64  // latest leader time applied (unix ms)
	lastSweep   int64  // clock of the last producer expiry sweep
}

// maxReadyPasses bounds Ready handling per scheduler pass; more work is
// re-queued so one busy group cannot starve others.
const maxReadyPasses = 4

// handle runs one scheduler pass for the group. It reports whether the
// pass queued the first sync of an idle durability pipeline: the caller
// must then call startSync.
func (p *Partition) handle(f workFlags) (startSync bool) {
	p.raftMu.Lock()
	defer p.raftMu.Unlock()
	return p.handleRaftMuLocked(f)
}

// handleRaftMuLocked runs one pass: the scheduler's, or a sync worker's
// right after it made this group's log durable (deliverLocal). Passes of
// one group never overlap: raftMu serializes them.
func (p *Partition) handleRaftMuLocked(f workFlags) (startSync bool) {
	p.passRaftMuLocked(f)
	startSync = p.raftMu.startSync
	p.raftMu.startSync = false
	return startSync
}

func (p *Partition) passRaftMuLocked(f workFlags) {
	rn := p.raftMu.rn
	if rn == nil {
		return
	}
	if f&workTick != 0 && !p.quiesced.Load() {
		rn.Tick()
		p.maybeQuiesceLeaderRaftMuLocked()
	}
	if f&workMaint != 0 {
		p.retentionRaftMuLocked()
	}
	p.mu.Lock()
	inbox, props, snapDone, ops := p.mu.inbox, p.mu.props, p.mu.snapDone, p.mu.ops
	p.raftMu.inboxAt = time.Time{}
	if len(inbox) > 0 {
		p.raftMu.inboxAt = p.mu.inboxAt
	}
	p.mu.inbox, p.mu.props, p.mu.snapDone, p.mu.ops = nil, nil, nil, nil
	qFrom, qTerm := p.mu.quiesceFrom, p.mu.quiesceTerm
	p.mu.quiesceFrom = 0
	p.mu.Unlock()
	if len(props) > 0 || len(ops) > 0 {
		p.wakeRaftMuLocked()
	}
	for _, m := range inbox {
		if !quiescentMessage(m) {
			p.wakeRaftMuLocked()
			break
		}
	}
	for _, op := range ops {
		op(rn)
	}
	for _, to := range snapDone {
		rn.ReportSnapshot(to, raft.SnapshotFinish)
	}
	for _, m := range inbox {
		if err := rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			p.h.logger.Debug("raft step", "group", p.id, "type", m.GetType(), "err", err)
		}
	}
	if len(props) > 0 {
		p.proposeRaftMuLocked(props)
	}
	for i := 0; p.raftMu.rn != nil && rn.HasReady(); i++ {
		if i == maxReadyPasses {
			p.h.sched.enqueue(p.id, workReady)
			break
		}
		p.handleReadyRaftMuLocked(rn.Ready())
		if local := p.raftMu.local; len(local) > 0 && p.raftMu.rn != nil {
			p.raftMu.local = nil
			for _, m := range local {
				if err := rn.Step(m); err != nil {
					p.h.logger.Debug("raft step", "group", p.id, "type", m.GetType(), "err", err)
				}
			}
		}
	}
	if qFrom != 0 && p.raftMu.rn != nil {
		p.maybeQuiesceFollowerRaftMuLocked(qFrom, qTerm)
	}
	if p.raftMu.rn != nil {
		p.mu.Lock()
		stale := p.mu.viewStale
		p.mu.Unlock()
		if stale {
			p.updateReadyRaftMuLocked()
		}
	}
	if out := p.raftMu.out; len(out) > 0 {
		p.raftMu.out = nil
		p.h.send(p.id, out)
	}
}

// proposeRaftMuLocked hands queued proposals to raft. A proposal raft
// drops was definitely not proposed.
func (p *Partition) proposeRaftMuLocked(props []*proposal) {
	rn := p.raftMu.rn
	for _, pr := range props {
		// Marked proposed before raft sees it: from here on a caller
		// that gives up learns the outcome is unknown, never that the
		// batch was not written.
		p.mu.Lock()
		canceled := pr.canceled
		pr.proposed = !canceled
		p.mu.Unlock()
		if canceled {
			continue
		}
		var err error
		switch {
		case !p.raftMu.isLeader:
			err = &NotLeaderError{Leader: p.raftMu.lead}
		case pr.cc != nil && p.raftMu.confIndex > p.raftMu.sm.applied:
			err = ErrConfChangeInProgress
		case pr.cc != nil:
			err = rn.ProposeConfChange(pr.cc)
		default:
			err = rn.Propose(pr.data)
		}
		if errors.Is(err, raft.ErrProposalDropped) {
			// The leader refuses while its uncommitted tail is full (or
			// it is handing leadership over).
			err = ErrThrottled
			if st := rn.BasicStatus(); st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
				err = &NotLeaderError{Leader: st.Lead}
			}
		}
		p.mu.Lock()
		if err != nil {
			delete(p.mu.pending, pr.seq)
			if pr.pid >= 0 {
				p.mu.viewStale = true
			}
			pr.finishLocked(ProduceResult{}, err)
		} else if pr.acks == AcksNone {
			pr.finishLocked(ProduceResult{LogAppendTime: pr.res.LogAppendTime}, nil)
		}
		p.mu.Unlock()
	}
}

func (p *Partition) handleReadyRaftMuLocked(rd raft.Ready) {
	if rd.SoftState != nil {
		p.onSoftStateRaftMuLocked(rd.SoftState)
	}
	// Messages to other nodes leave first: with asynchronous storage
	// writes they do not depend on this node's append (a leader's
	// entries travel to the followers while it writes and syncs them
	// itself; responses that vouch for durable state are the storage
	// messages' Responses, sent only after the sync).
	local := 0
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread, raft.LocalApplyThread:
			local++
		default:
			p.raftMu.out = append(p.raftMu.out, m)
		}
	}
	if out := p.raftMu.out; len(out) > 0 && local > 0 {
		p.raftMu.out = nil
		p.h.send(p.id, out)
	}
	for _, m := range rd.Messages {
		if p.raftMu.rn == nil {
			return // failed
		}
		switch m.GetTo() {
		case raft.LocalAppendThread:
			p.storageAppendRaftMuLocked(m)
		case raft.LocalApplyThread:
			p.storageApplyRaftMuLocked(m)
		}
	}
}

func (p *Partition) onSoftStateRaftMuLocked(ss *raft.SoftState) {
	p.wakeRaftMuLocked()
	wasLeader, oldLead := p.raftMu.isLeader, p.raftMu.lead
	p.raftMu.isLeader = ss.RaftState == raft.StateLeader
	p.raftMu.lead = ss.Lead
	if ss.Lead != oldLead {
		p.h.metrics.leaderChanges.Inc()
	}
	if wasLeader && !p.raftMu.isLeader {
		p.h.metrics.leaders.Dec()
	} else if !wasLeader && p.raftMu.isLeader {
		p.h.metrics.leaders.Inc()
	}
	p.raftMu.term = p.raftMu.rn.BasicStatus().GetTerm()
	p.mu.Lock()
	p.mu.leader = ss.Lead
	if wasLeader != p.raftMu.isLeader {
		p.resetLeadershipLocked(p.raftMu.isLeader, &NotLeaderError{Leader: ss.Lead})
	}
	p.mu.Unlock()
	p.updateReadyRaftMuLocked()
}

// resetLeadershipLocked fails every waiting proposal: queued ones were
// never proposed, proposed ones have an unknown outcome.
func (p *Partition) resetLeadershipLocked(isLeader bool, notLeader error) {
	p.mu.isLeader = isLeader
	p.mu.ready = false
	p.mu.producers = nil
	p.mu.viewStale = false
	close(p.mu.readyCh)
	p.mu.readyCh = make(chan struct{})
	for seq, pr := range p.mu.pending {
		if pr.proposed {
			pr.finishLocked(ProduceResult{}, ErrUnknownOutcome)
		} else {
			pr.canceled = true
			pr.finishLocked(ProduceResult{}, notLeader)
		}
		delete(p.mu.pending, seq)
	}
	p.mu.props = nil
}

// updateReadyRaftMuLocked makes a leader ready once it applied the first
// entry of its term: then every entry of earlier leaders is applied and
// the producer view is complete.
func (p *Partition) updateReadyRaftMuLocked() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.mu.isLeader || p.raftMu.sm.appliedTerm != p.raftMu.term {
		return
	}
	if p.mu.ready && p.mu.viewStale {
		inflight := 0
		for _, pr := range p.mu.pending {
			if pr.pid >= 0 {
				inflight++
			}
		}
		if inflight > 0 {
			return
		}
		p.mu.ready = false
	}
	if p.mu.ready {
		return
	}
	p.mu.ready = true
	p.mu.viewStale = false
	p.mu.producers = p.raftMu.sm.producers.clone()
	close(p.mu.readyCh)
	p.mu.readyCh = make(chan struct{})
}

// storageAppendRaftMuLocked writes entries, hard state and snapshots of a
// MsgStorageAppend to the log, then queues its responses behind a sync.
func (p *Partition) storageAppendRaftMuLocked(m *raftpb.Message) {
	if len(m.GetEntries()) > 0 || !raft.IsEmptySnap(m.GetSnapshot()) {
		p.wakeRaftMuLocked()
	}
	if snap := m.GetSnapshot(); !raft.IsEmptySnap(snap) {
		if err := p.installSnapshotRaftMuLocked(snap); err != nil {
			p.failRaftMuLocked(err)
			return
		}
	}
	var item syncItem
	if ents := m.GetEntries(); len(ents) > 0 {
		sents := make([]storage.Entry, len(ents))
		for i, e := range ents {
			recs, maxTS := entryMeta(e.GetData())
			sents[i] = storage.Entry{Index: e.GetIndex(), Term: e.GetTerm(), Type: e.GetType(),
				Records: recs, MaxTimestamp: maxTS, Data: e.GetData()}
		}
		first, last := sents[0].Index, sents[len(sents)-1].Index
		for _, e := range sents {
			if e.Type != raftpb.EntryNormal {
				p.raftMu.confIndex = e.Index
			}
		}
		if err := p.log.Append(sents); err != nil {
			p.failRaftMuLocked(err)
			return
		}
		p.raftMu.cache.appended(ents)
		p.noteAppended(first, last)
		item.acks1 = p.collectAcks1(ents)
	}
	if m.Term != nil { // the message carries a HardState
		p.raftMu.hs = hardState{term: m.GetTerm(), vote: m.GetVote(), commit: m.GetCommit()}
		p.raftMu.term = m.GetTerm()
		if p.raftMu.hs.term != p.raftMu.saved.term || p.raftMu.hs.vote != p.raftMu.saved.vote {
			if err := p.saveHardStateRaftMuLocked(); err != nil {
				p.failRaftMuLocked(err)
				return
			}
		}
	}
	item.resps = m.GetResponses()
	if len(m.GetEntries()) > 0 && !p.raftMu.isLeader {
		item.received = p.raftMu.inboxAt // the leader's append, as a follower received it
	}
	if len(m.GetEntries()) == 0 && raft.IsEmptySnap(m.GetSnapshot()) && p.deliverDurableRaftMuLocked(item.resps) {
		return // a commit index or a vote only: nothing to make durable
	}
	if len(item.resps) > 0 || len(item.acks1) > 0 {
		p.queueSyncRaftMuLocked(item)
	}
}

// collectAcks1 finds this node's acks=1 proposals among appended entries.
func (p *Partition) collectAcks1(ents []*raftpb.Entry) []*proposal {
	var out []*proposal
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range ents {
		c, ok, err := decodeCommand(e.GetData())
		if err != nil || !ok || c.Origin != p.h.cfg.NodeID {
			continue
		}
		if pr := p.mu.pending[c.Seq]; pr != nil && pr.acks == AcksLeader {
			pr.index = e.GetIndex()
			out = append(out, pr)
		}
	}
	return out
}

// saveHardStateRaftMuLocked persists the latest HardState with Commit
// clamped to the durable log (a commit index past the durable log would
// not be recoverable).
func (p *Partition) saveHardStateRaftMuLocked() error {
	hs := p.raftMu.hs
	p.syncMu.Lock()
	hs.commit = min(hs.commit, p.syncMu.durable)
	p.syncMu.Unlock()
	hs.commit = max(hs.commit, p.raftMu.saved.commit)
	if err := p.log.SaveState(hs.proto(), nil); err != nil {
		return err
	}
	p.raftMu.saved = hs
	return nil
}

// failRaftMuLocked stops the replica after a storage failure: it no longer
// participates in the group, and waiting producers learn the outcome is
// unknown.
func (p *Partition) failRaftMuLocked(err error) {
	p.h.logger.Error("partition log failed", "group", p.id, "err", err)
	p.mu.Lock()
	if p.mu.failed == nil {
		p.mu.failed = fmt.Errorf("%w: %w", ErrLogFailed, err)
	}
	p.resetLeadershipLocked(false, &NotLeaderError{})
	p.mu.Unlock()
	p.raftMu.rn = nil
}

// hardState is a plain copy of raftpb.HardState.
type hardState struct{ term, vote, commit uint64 }

func (h hardState) proto() *raftpb.HardState {
	return &raftpb.HardState{Term: new(h.term), Vote: new(h.vote), Commit: new(h.commit)}
}
