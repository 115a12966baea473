package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// Moving replicas. A reassignment sets a partition's Target in the
// metadata (cmdReassign, or cmdDecommission for every partition on a
// node). Every node then reconciles toward Replicas ∪ Target: a node only
// in Target opens its replica as a joining member. The partition's Raft
// leader drives the membership, one change at a time (moveStep): add each
// new node as a learner, promote it once caught up, hand leadership to a
// target node if the leader itself leaves, remove the replicas outside
// Target; then it proposes cmdReassignDone (forwarded to the controller),
// Replicas becomes Target, and the nodes left out remove their replicas.
// Every step is idempotent and re-derived from the group's configuration,
// so a leader change or restart mid-move resumes where it stopped.

// promoteLag is how far (in entries) a learner may trail the leader and
// still be promoted to voter.
const promoteLag = 256

// applyMoves sets (done=false) or completes (done=true) reassignments. A
// target has the topic's replication factor of nodes, or one fewer when
// shrink is set (a decommission with no spare node).
func applyMoves(n *State, moves []move, done, shrink bool) error {
	if len(moves) == 0 {
		return &InvalidError{Field: "replicas", Reason: "nothing to move"}
	}
	for _, mv := range moves {
		t, ok := n.Topics[mv.Topic]
		if !ok || (mv.TopicID != "" && t.ID != mv.TopicID) {
			return &UnknownTopicError{Topic: mv.Topic}
		}
		if mv.Partition < 0 || int(mv.Partition) >= len(t.Partitions) {
			return &UnknownPartitionError{Topic: mv.Topic, Partition: mv.Partition}
		}
		rf := int(t.ReplicationFactor)
		if len(mv.Replicas) == 0 || len(mv.Replicas) > rf || (len(mv.Replicas) < rf && !(shrink && len(mv.Replicas) == rf-1)) {
			return &InvalidError{Field: "replicas", Reason: fmt.Sprintf("must name %d nodes (the replication factor)", rf)}
		}
		for i, id := range mv.Replicas {
			if _, ok := n.Nodes[id]; !ok || slices.Contains(mv.Replicas[:i], id) {
				return &InvalidError{Field: "replicas", Reason: fmt.Sprintf("node %d is unknown or repeated", id)}
			}
		}
		p := t.Partitions[mv.Partition]
		if done && !slices.Equal(p.Target, mv.Replicas) {
			return &InvalidError{Field: "replicas", Reason: "not the reassignment in progress"}
		}
		t = cloneTopic(t)
		p = t.Partitions[mv.Partition]
		switch {
		case done:
			p.Replicas, p.Target = slices.Clone(mv.Replicas), nil
		case slices.Equal(p.Replicas, mv.Replicas):
			p.Target = nil
		default:
			p.Target = slices.Clone(mv.Replicas)
		}
		t.Partitions[mv.Partition] = p
		n.Topics[t.Name] = t
	}
	return nil
}

// ReassignPartition moves a partition's replicas to the given nodes (the
// first is the preferred leader). It returns once the reassignment is in
// the metadata; the move itself proceeds in the background.
func (m *Metadata) ReassignPartition(ctx context.Context, topic string, partition int32, replicas []uint64) error {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return err
	}
	s := m.State()
	t, ok := s.Topics[topic]
	if !ok {
		return &UnknownTopicError{Topic: topic}
	}
	for _, id := range replicas {
		if s.Decommissioned[id] {
			return &InvalidError{Field: "replicas", Reason: fmt.Sprintf("node %d is decommissioned", id)}
		}
	}
	c := &command{Type: cmdReassign, Moves: []move{{Topic: topic, TopicID: t.ID, Partition: partition, Replicas: slices.Clone(replicas)}}}
	if _, err := apply(s, c); err != nil {
		return err
	}
	_, err := m.propose(ctx, c)
	return err
}

// DecommissionNode marks a node decommissioned (no new replicas go to it)
// and moves each of its replicas to the live node holding the fewest. It
// returns the number of replicas set to move.
func (m *Metadata) DecommissionNode(ctx context.Context, id uint64) (int, error) {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return 0, err
	}
	s := m.State()
	if _, ok := s.Nodes[id]; !ok {
		return 0, &InvalidError{Field: "node_id", Reason: fmt.Sprintf("node %d is not in the cluster", id)}
	}
	load := map[uint64]int{}
	var candidates []uint64
	for _, n := range m.liveNodes(s) {
		if n.ID != id {
			candidates = append(candidates, n.ID)
			load[n.ID] = 0
		}
	}
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			for _, r := range current(p) {
				load[r]++
			}
		}
	}
	var moves []move
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		for _, p := range t.Partitions {
			reps := current(p)
			i := slices.Index(reps, id)
			if i < 0 {
				continue
			}
			best := uint64(0)
			for _, c := range candidates {
				if !slices.Contains(reps, c) && (best == 0 || load[c] < load[best]) {
					best = c
				}
			}
			target := slices.Clone(reps)
			if best == 0 {
				if len(reps) == 1 {
					return 0, &InvalidError{Field: "node_id", Reason: fmt.Sprintf("no other live node can take %s-%d", name, p.Index)}
				}
				target = slices.Delete(target, i, i+1) // no spare node: shrink
			} else {
				target[i] = best
				load[best]++
			}
			moves = append(moves, move{Topic: name, TopicID: t.ID, Partition: p.Index, Replicas: target})
		}
	}
	if _, err := m.propose(ctx, &command{Type: cmdDecommission, NodeID: id, Moves: moves}); err != nil {
		return 0, err
	}
	return len(moves), nil
}

// current is where a partition's replicas are going (Target when a move is
// in progress).
func current(p PartitionInfo) []uint64 {
	if p.Target != nil {
		return p.Target
	}
	return p.Replicas
}

// moverLoop drives the reassignments of the partitions this node leads
// and, on the controller, removes decommissioned nodes once their
// replicas moved (decommission.go) and snapshots the state (snapshot.go). It polls while any of that is in
// progress and sleeps otherwise.
func (m *Metadata) moverLoop() {
	defer m.wg.Done()
	for {
		ch := m.Changed()
		s := m.State()
		busy := m.moveStep(s)
		busy = m.removeDecommissioned(s) || busy
		busy = m.maybeSnapshot(s) || busy
		var tick <-chan time.Time
		if busy {
			tick = time.After(100 * time.Millisecond)
		}
		select {
		case <-ch:
		case <-tick:
		case <-m.stop:
			return
		}
	}
}

// moveStep advances every reassignment led here by one membership change;
// it reports whether any reassignment is in progress anywhere.
func (m *Metadata) moveStep(s *State) bool {
	busy := false
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		for _, pi := range t.Partitions {
			if pi.Target == nil {
				continue
			}
			busy = true
			p, ok := m.cfg.Host.Partition(pi.GroupID)
			if !ok || !p.IsLeader() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := m.advanceMove(ctx, t, pi, p)
			cancel()
			if err != nil {
				m.logger.Debug("moving partition replicas", "topic", name, "partition", pi.Index, "err", err)
			}
		}
	}
	return busy
}

// advanceMove makes the next membership change toward pi.Target, or
// completes the move in the metadata.
func (m *Metadata) advanceMove(ctx context.Context, t *Topic, pi PartitionInfo, p *replication.Partition) error {
	st := p.Status()
	members := append(slices.Clone(st.Voters), st.Learners...)
	for _, id := range pi.Target {
		if !slices.Contains(members, id) {
			m.logger.Info("adding learner", "topic", t.Name, "partition", pi.Index, "node", id)
			return p.ChangeReplicas(ctx, replication.ReplicaChange{Type: replication.AddLearner, NodeID: id})
		}
	}
	for _, id := range st.Learners {
		if !slices.Contains(pi.Target, id) {
			continue
		}
		for _, r := range st.Replicas {
			if r.NodeID == id && r.Lag <= promoteLag && r.Match > 0 {
				m.logger.Info("promoting learner", "topic", t.Name, "partition", pi.Index, "node", id)
				return p.ChangeReplicas(ctx, replication.ReplicaChange{Type: replication.AddVoter, NodeID: id})
			}
		}
		return nil // catching up
	}
	for _, id := range members {
		if slices.Contains(pi.Target, id) {
			continue
		}
		if id == m.cfg.NodeID {
			// The leader leaves: hand over to a caught-up target voter.
			for _, r := range st.Replicas {
				if r.NodeID != id && slices.Contains(pi.Target, r.NodeID) && slices.Contains(st.Voters, r.NodeID) && r.Active && r.Lag <= promoteLag {
					m.logger.Info("transferring leadership off a leaving replica", "topic", t.Name, "partition", pi.Index, "to", r.NodeID)
					p.TransferLeadership(r.NodeID)
					return nil
				}
			}
			continue
		}
		m.logger.Info("removing replica", "topic", t.Name, "partition", pi.Index, "node", id)
		return p.ChangeReplicas(ctx, replication.ReplicaChange{Type: replication.RemoveReplica, NodeID: id})
	}
	if slices.Contains(members, m.cfg.NodeID) && !slices.Contains(pi.Target, m.cfg.NodeID) {
		return nil // waiting for the transfer
	}
	_, err := m.propose(ctx, &command{Type: cmdReassignDone, Moves: []move{{Topic: t.Name, TopicID: t.ID, Partition: pi.Index, Replicas: pi.Target}}})
	if err == nil {
		m.logger.Info("partition reassigned", "topic", t.Name, "partition", pi.Index, "replicas", pi.Target)
	}
	return err
}
