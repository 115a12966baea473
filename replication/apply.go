package replication

import (
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// storageApplyRaftMuLocked applies committed entries and steps the
// responses back into raft.
func (p *Partition) storageApplyRaftMuLocked(m *raftpb.Message) {
	sm := &p.raftMu.sm
	p.wakeRaftMuLocked()
	var resolved []resolvedProp
	nextBase := p.log.SegmentBaseAfter(sm.applied)
	for _, e := range m.GetEntries() {
		if e.GetIndex() == nextBase {
			// e starts a segment: a snapshot of the state before it lets
			// retention delete the segments before e and leaves the log
			// starting right after a snapshot (storage/snapshots.go).
			p.snapshotRaftMuLocked()
			nextBase = p.log.SegmentBaseAfter(nextBase)
		}
		switch e.GetType() {
		case raftpb.EntryNormal:
			if r, ok := p.applyNormalRaftMuLocked(e); ok {
				resolved = append(resolved, r)
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
				p.applyConfChangeRaftMuLocked(&cc)
			}
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
				p.applyConfChangeRaftMuLocked(&cc)
				if origin, seq, ok := confChangeIdentity(cc.GetContext()); ok && origin == p.h.cfg.NodeID {
					resolved = append(resolved, resolvedProp{seq: seq})
				}
			}
		}
		if p.raftMu.rn == nil {
			return // failed while applying
		}
		sm.applied, sm.appliedTerm = e.GetIndex(), e.GetTerm()
	}
	p.raftMu.cache.appliedTo(sm.applied)
	p.h.metrics.applied.Add(float64(len(m.GetEntries())))
	now := time.Now()
	p.mu.Lock()
	for _, r := range resolved {
		pr := p.mu.pending[r.seq]
		if pr == nil {
			continue
		}
		delete(p.mu.pending, r.seq)
		if pr.pid >= 0 && p.mu.producers != nil {
			if ps := p.mu.producers[pr.pid]; ps != nil {
				for i := range ps.Batches {
					if ps.Batches[i].prop == pr {
						ps.Batches[i].prop, ps.Batches[i].Offset = nil, r.res.BaseOffset
					}
				}
			}
		}
		r.res.LogAppendTime = pr.res.LogAppendTime
		pr.finishLocked(r.res, r.err)
		p.h.metrics.proposalLatency.Observe(now.Sub(pr.start).Seconds())
	}
	p.publishLocked(sm.nextOffset, p.log.StartOffset())
	p.mu.Unlock()
	p.updateReadyRaftMuLocked()
	if p.raftMu.rn == nil {
		return
	}
	for _, r := range m.GetResponses() {
		if err := p.raftMu.rn.Step(r); err != nil {
			p.h.logger.Warn("raft step apply response", "group", p.id, "err", err)
		}
	}
	if sm.applied-sm.snapIndex >= p.h.cfg.SnapshotEntries {
		p.snapshotRaftMuLocked()
	}
}

type resolvedProp struct {
	seq uint64
	res ProduceResult
	err error
}

func (p *Partition) applyNormalRaftMuLocked(e *raftpb.Entry) (resolvedProp, bool) {
	sm := &p.raftMu.sm
	c, ok, err := decodeCommand(e.GetData())
	if err != nil {
		p.h.logger.Error("skipping malformed entry", "group", p.id, "index", e.GetIndex(), "err", err)
		return resolvedProp{}, false
	}
	if !ok {
		return resolvedProp{}, false
	}
	r := resolvedProp{seq: c.Seq}
	switch c.Type {
	case cmdRecords:
		base, err := p.log.OffsetAt(e.GetIndex())
		if err != nil {
			base = sm.nextOffset
		} else if base != sm.nextOffset {
			p.h.logger.Error("offset mismatch at apply", "group", p.id, "index", e.GetIndex(),
				"log", base, "state", sm.nextOffset)
		}
		sm.nextOffset = base + uint64(c.Records)
		sm.clock = max(sm.clock, c.LeaderTime)
		if c.idempotent() {
			sm.producers.record(c.ProducerID, c.ProducerEpoch, c.BaseSequence, c.Records, c.LeaderTime, batchMeta{Offset: base})
		}
		p.maybeExpireProducersRaftMuLocked()
		r.res.BaseOffset = base
	case cmdDeleteRecords:
		before := min(c.Before, sm.nextOffset)
		if err := p.log.DeleteBefore(before, sm.snapIndex); err != nil {
			r.err = err
			p.h.logger.Error("delete records", "group", p.id, "before", before, "err", err)
		}
	}
	return r, c.Origin == p.h.cfg.NodeID
}

// maybeExpireProducersRaftMuLocked forgets idle producer ids, by the
// replicated leader clock, so producer state stays bounded by the
// producers active within the expiry (every replica forgets the same ones
// at the same log position).
func (p *Partition) maybeExpireProducersRaftMuLocked() {
	sm := &p.raftMu.sm
	p.mu.Lock()
	expiry := p.mu.cfg.ProducerIDExpiryMs
	p.mu.Unlock()
	if expiry <= 0 {
		expiry = DefaultProducerIDExpiryMs
	}
	if sm.clock-sm.lastSweep < max(expiry/10, 1000) {
		return
	}
	sm.lastSweep = sm.clock
	if n := sm.producers.expire(sm.clock - expiry); n > 0 {
		p.h.logger.Debug("expired idle producer ids", "group", p.id, "count", n)
	}
	p.mu.Lock()
	if p.mu.producers != nil {
		p.mu.producers.expire(sm.clock - expiry)
	}
	p.mu.Unlock()
}

func (p *Partition) applyConfChangeRaftMuLocked(cc raftpb.ConfChangeI) {
	cs := p.raftMu.rn.ApplyConfChange(cc)
	if p.raftMu.cs != nil && p.raftMu.cs.Equivalent(cs) == nil {
		return // e.g. the bootstrap entries of the configuration saved at creation
	}
	p.raftMu.cs = cs
	p.mu.Lock()
	p.setMembersLocked(cs)
	p.mu.Unlock()
	if err := p.log.SaveState(nil, cs); err != nil {
		p.failRaftMuLocked(err)
	}
}
