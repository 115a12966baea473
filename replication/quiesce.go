package replication

import (
	"encoding/binary"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiescence (CockroachDB's idea): an idle group stops ticking, so a node
// with thousands of idle partitions sends no per-group heartbeats.
//
// A leader quiesces when nothing is in flight: no proposals waiting, its
// log committed and applied to the last index, every follower matching
// that index, recently active and on a node that is up, for longer than
// a heartbeat interval (so followers heard the final commit index). It
// then sends each follower a regular MsgHeartbeat flagged Quiesce; a
// follower that steps it and finds itself caught up with that leader
// stops ticking too. Heartbeats and their responses never wake a group;
// anything else does: a proposal or operation, any other message (a
// follower whose quiesce heartbeat was lost times out and campaigns, and
// its pre-vote wakes the leader), new entries, a leader change.
//
// A quiesced follower cannot notice a dead leader by timeout, so nodes
// watch each other instead: every heartbeat interval a host sends one
// liveness message (GroupID 0) to every node it shares a group with, and
// any message from a node counts as a sign of life. A node silent for an
// election timeout is down: every group with a replica there wakes and
// raft takes over (elections, check quorum). One message per pair of
// nodes replaces one per group.

// A node that restarts faster than the liveness timeout is never seen
// silent, yet its replicas lost their leadership; its liveness messages
// carry an incarnation (random per host run), and a new incarnation wakes
// the groups shared with that node too.

// livenessGroup is the reserved group id of node-to-node liveness
// messages.
const livenessGroup = 0

// liveness tracks when each peer node was last heard from.
type liveness struct {
	mu struct {
		sync.Mutex
		lastHeard   map[uint64]time.Time
		down        map[uint64]bool
		incarnation map[uint64]uint64
	}
}

func newLiveness() *liveness {
	l := &liveness{}
	l.mu.lastHeard = map[uint64]time.Time{}
	l.mu.down = map[uint64]bool{}
	l.mu.incarnation = map[uint64]uint64{}
	return l
}

// restarted records node's incarnation and reports whether it changed.
func (l *liveness) restarted(node, inc uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, known := l.mu.incarnation[node]
	l.mu.incarnation[node] = inc
	return known && old != inc
}

// heard records a sign of life from node.
func (l *liveness) heard(node uint64, now time.Time) {
	l.mu.Lock()
	l.mu.lastHeard[node] = now
	delete(l.mu.down, node)
	l.mu.Unlock()
}

func (l *liveness) isDown(node uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.down[node]
}

// check marks peers silent for longer than timeout as down and returns
// the ones that just went down. Peers seen for the first time start
// their clock now.
func (l *liveness) check(peers map[uint64]struct{}, now time.Time, timeout time.Duration) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var newlyDown []uint64
	for id := range peers {
		last, ok := l.mu.lastHeard[id]
		if !ok {
			l.mu.lastHeard[id] = now
			continue
		}
		if !l.mu.down[id] && now.Sub(last) > timeout {
			l.mu.down[id] = true
			newlyDown = append(newlyDown, id)
		}
	}
	return newlyDown
}

// livenessTick sends the liveness messages and wakes the groups of nodes
// that went silent. Called by the tick loop.
func (h *Host) livenessTick(tick uint64) {
	if h.cfg.Transport == nil || tick%uint64(h.cfg.HeartbeatTicks) != 0 {
		return
	}
	parts := h.partitionList()
	peers := map[uint64]struct{}{}
	for _, p := range parts {
		for _, id := range p.members() {
			if id != h.cfg.NodeID {
				peers[id] = struct{}{}
			}
		}
	}
	self := h.cfg.NodeID
	inc := binary.BigEndian.AppendUint64(nil, h.incarnation)
	for id := range peers {
		h.cfg.Transport.Send(id, []GroupMessage{{GroupID: livenessGroup, Message: &raftpb.Message{
			Type: raftpb.MsgHeartbeat.Enum(), From: new(self), To: new(id), Context: inc}}})
	}
	timeout := time.Duration(h.cfg.ElectionTicks) * h.cfg.TickInterval
	for _, down := range h.live.check(peers, time.Now(), timeout) {
		h.logger.Info("node unreachable, waking its groups", "node", down)
		h.wakeGroupsOf(down)
	}
}

// onLiveness handles a liveness message from node.
func (h *Host) onLiveness(from uint64, m *raftpb.Message) {
	if ctx := m.GetContext(); len(ctx) == 8 && h.live.restarted(from, binary.BigEndian.Uint64(ctx)) {
		h.logger.Info("node restarted, waking its groups", "node", from)
		h.wakeGroupsOf(from)
	}
}

// wakeGroupsOf wakes every group with a replica on node.
func (h *Host) wakeGroupsOf(node uint64) {
	for _, p := range h.partitionList() {
		for _, id := range p.members() {
			if id == node {
				p.wake()
				break
			}
		}
	}
}

// members are the node ids of the group's voters and learners.
func (p *Partition) members() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.members
}

func (p *Partition) setMembersLocked(cs *raftpb.ConfState) {
	m := append([]uint64(nil), cs.GetVoters()...)
	m = append(m, cs.GetLearners()...)
	m = append(m, cs.GetVotersOutgoing()...)
	p.mu.members = m
}

// wake makes a quiesced group tick again.
func (p *Partition) wake() {
	if p.quiesced.CompareAndSwap(true, false) {
		p.h.sched.enqueue(p.id, workTick)
	}
}

// wakeRaftMuLocked is wake from within a pass.
func (p *Partition) wakeRaftMuLocked() {
	p.raftMu.idleTicks = 0
	p.quiesced.Store(false)
}

// quiescentMessage reports whether m may be stepped without waking the
// group.
func quiescentMessage(m *raftpb.Message) bool {
	t := m.GetType()
	return t == raftpb.MsgHeartbeat || t == raftpb.MsgHeartbeatResp
}

// maybeQuiesceLeaderRaftMuLocked runs on every tick of a leader.
func (p *Partition) maybeQuiesceLeaderRaftMuLocked() {
	if !p.raftMu.isLeader || p.quiesced.Load() {
		return
	}
	p.mu.Lock()
	busy := len(p.mu.pending) > 0 || len(p.mu.props) > 0 || len(p.mu.ops) > 0
	p.mu.Unlock()
	p.syncMu.Lock()
	last, syncing := p.syncMu.appended, p.syncMu.syncing
	p.syncMu.Unlock()
	sm := &p.raftMu.sm
	if busy || syncing || p.raftMu.hs.commit != last || sm.applied != last || p.raftMu.confIndex > sm.applied {
		p.raftMu.idleTicks = 0
		return
	}
	self := p.h.cfg.NodeID
	ok := true
	var followers []uint64
	p.raftMu.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == self {
			return
		}
		followers = append(followers, id)
		if pr.Match != last || !pr.RecentActive || p.h.live.isDown(id) {
			ok = false
		}
	})
	if !ok {
		p.raftMu.idleTicks = 0
		return
	}
	p.raftMu.idleTicks++
	if p.raftMu.idleTicks <= p.h.cfg.HeartbeatTicks+1 {
		return
	}
	p.quiesced.Store(true)
	term, commit := p.raftMu.term, p.raftMu.hs.commit
	msgs := make([]GroupMessage, 0, len(followers))
	for _, id := range followers {
		msgs = append(msgs, GroupMessage{GroupID: p.id, Quiesce: true, Message: &raftpb.Message{
			Type: raftpb.MsgHeartbeat.Enum(), From: new(self), To: new(id), Term: new(term), Commit: new(commit)}})
	}
	for _, m := range msgs {
		p.h.out.addGroupMessages(m.Message.GetTo(), []GroupMessage{m})
	}
}

// maybeQuiesceFollowerRaftMuLocked runs after a pass that stepped a
// quiesce heartbeat from leader.
func (p *Partition) maybeQuiesceFollowerRaftMuLocked(leader, term uint64) {
	p.syncMu.Lock()
	last := p.syncMu.appended
	p.syncMu.Unlock()
	if p.raftMu.isLeader || p.raftMu.lead != leader || p.raftMu.term != term ||
		p.raftMu.hs.commit != last || p.raftMu.sm.applied != last {
		return
	}
	p.quiesced.Store(true)
}
