package replication

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// snapshotRaftMuLocked records the applied partition state as the log's
// snapshot, allowing retention to delete the log below it.
func (p *Partition) snapshotRaftMuLocked() {
	sm := &p.raftMu.sm
	if sm.applied == 0 || sm.applied == sm.snapIndex {
		return
	}
	if p.raftMu.saved.commit < sm.applied {
		// A snapshot above the persisted commit index would not be
		// recoverable: raft refuses a commit index below the snapshot.
		p.raftMu.hs.commit = max(p.raftMu.hs.commit, sm.applied)
		if err := p.saveHardStateRaftMuLocked(); err != nil {
			p.failRaftMuLocked(err)
			return
		}
	}
	data := encodeSnapshot(&partitionSnapshot{NextOffset: sm.nextOffset, Clock: sm.clock,
		LastSweep: sm.lastSweep, Producers: sm.producers})
	if err := p.log.CreateSnapshot(sm.applied, p.raftMu.cs, data); err != nil {
		p.h.logger.Warn("create snapshot", "group", p.id, "index", sm.applied, "err", err)
		return
	}
	sm.snapIndex = sm.applied
	p.h.metrics.snapshots.WithLabelValues("create").Inc()
}

// installSnapshotRaftMuLocked replaces the log and state with a snapshot
// received from the leader.
func (p *Partition) installSnapshotRaftMuLocked(snap *raftpb.Snapshot) error {
	ps, err := decodeSnapshot(snap.GetData())
	if err != nil {
		return fmt.Errorf("replication: partition %d snapshot at %d: %w", p.id, snap.GetMetadata().GetIndex(), err)
	}
	p.raftMu.cache.reset() // before: a failed install leaves the log unknown
	if err := p.log.ApplySnapshot(snap, ps.NextOffset); err != nil {
		return err
	}
	idx := snap.GetMetadata().GetIndex()
	p.h.metrics.snapshots.WithLabelValues("install").Inc()
	p.raftMu.sm = stateMachine{applied: idx, appliedTerm: snap.GetMetadata().GetTerm(),
		nextOffset: ps.NextOffset, producers: ps.Producers, snapIndex: idx, clock: ps.Clock, lastSweep: ps.LastSweep}
	p.raftMu.cs = snap.GetMetadata().GetConfState()
	p.mu.Lock()
	p.setMembersLocked(p.raftMu.cs)
	p.mu.Unlock()
	p.syncMu.Lock()
	p.syncMu.appended, p.syncMu.durable = idx, idx
	p.syncMu.gen++
	p.syncMu.Unlock()
	p.raftMu.hs.commit = max(p.raftMu.hs.commit, idx)
	if err := p.saveHardStateRaftMuLocked(); err != nil {
		return err
	}
	p.mu.Lock()
	p.publishLocked(ps.NextOffset, p.log.StartOffset())
	p.mu.Unlock()
	return nil
}

// retentionRaftMuLocked runs every RetentionCheck (quiesced or not).
// The commit index is not saved periodically: it is saved with every term
// or vote change, before every snapshot and on close, and a replica that
// restarts with an older one re-learns it from the leader (a group of one
// by electing itself); saving it on a timer would cost an fsync per
// partition.
func (p *Partition) retentionRaftMuLocked() {
	p.mu.Lock()
	cfg := p.mu.cfg
	p.mu.Unlock()
	if cfg.RetentionMs <= 0 && cfg.RetentionBytes <= 0 {
		return
	}
	p.snapshotRaftMuLocked()
	n, err := p.log.ApplyRetention(p.raftMu.sm.snapIndex, cfg.RetentionMs, cfg.RetentionBytes)
	if err != nil {
		p.h.logger.Warn("retention", "group", p.id, "err", err)
		return
	}
	if n > 0 {
		p.mu.Lock()
		p.publishLocked(p.mu.hw, p.log.StartOffset())
		p.mu.Unlock()
	}
}

// nameRecipient makes a snapshot message installable by a replica added
// after the snapshot was taken. The leader sends the snapshot before its
// log's first entry (storage.Log.StartSnapshot), so the follower receives
// every record the leader holds; that snapshot can predate the conf
// change that added the follower, and raft ignores a snapshot whose
// configuration lacks the recipient. It is named a learner there: the
// conf change that added it, applied again after the snapshot, then
// leaves it a learner or makes it a voter as it did on every replica,
// and a learner has no vote, so the configurations raft decides by are
// unchanged. (A learner may be in neither half of a joint configuration;
// the recipient is in none of its lists.)
func nameRecipient(m *raftpb.Message) {
	md := m.GetSnapshot().GetMetadata()
	cs := md.GetConfState()
	if cs == nil {
		return
	}
	to := m.GetTo()
	for _, ids := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()} {
		if slices.Contains(ids, to) {
			return
		}
	}
	cs = proto.Clone(cs).(*raftpb.ConfState)
	cs.Learners = append(cs.Learners, to)
	md.ConfState = cs
}
