package cluster

import (
	"context"
	"slices"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// Finishing a decommission. DecommissionNode marks a node and moves its
// replicas away (reassign.go). Once no partition places a replica on it
// (neither Replicas nor Target), the controller removes it from the
// metadata group if it is a learner there (a node that joined), then from
// the registry (cmdRemoveNode): `sluice cluster status` no longer lists it,
// placement cannot pick it, and a registration under its id is refused.
// The Decommissioned mark stays. A voter of the metadata group (one of the
// controller quorum) keeps its registration, marked decommissioned: the
// other voters find its internal address there, and taking it out of the
// quorum is a change of the quorum, not of placement.

// holdsReplicas reports whether any partition places a replica on node or
// is moving one there.
func holdsReplicas(s *State, node uint64) bool {
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if slices.Contains(p.Replicas, node) || slices.Contains(p.Target, node) {
				return true
			}
		}
	}
	return false
}

// removable lists the decommissioned nodes still registered that hold no
// replica, sorted.
func removable(s *State) []uint64 {
	var out []uint64
	for id := range s.Decommissioned {
		if _, ok := s.Nodes[id]; ok && !holdsReplicas(s, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// removeDecommissioned (on the controller) takes the decommissioned nodes
// that hold no replica out of the metadata group (learners only) and the
// registry. It reports whether some node is still waiting (a step failed
// or is under way).
func (m *Metadata) removeDecommissioned(s *State) bool {
	voters := m.part.Status().Voters
	ids := slices.DeleteFunc(removable(s), func(id uint64) bool { return slices.Contains(voters, id) })
	if len(ids) == 0 {
		return false
	}
	if !m.part.IsLeader() {
		return true // the controller removes them; it may be changing
	}
	busy := false
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := m.removeNode(ctx, id)
		cancel()
		if err != nil {
			busy = true
			m.logger.Debug("removing a decommissioned node", "node", id, "err", err)
		}
	}
	return busy
}

func (m *Metadata) removeNode(ctx context.Context, id uint64) error {
	if slices.Contains(m.part.Status().Learners, id) {
		m.logger.Info("removing a decommissioned node from the metadata group", "node", id)
		if err := m.part.ChangeReplicas(ctx, replication.ReplicaChange{Type: replication.RemoveReplica, NodeID: id}); err != nil {
			return err
		}
	}
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return err
	}
	c := &command{Type: cmdRemoveNode, NodeID: id}
	if _, err := apply(m.State(), c); err != nil {
		return nil // gone already, or it took a replica meanwhile
	}
	if _, err := m.propose(ctx, c); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.mu.heard, id)
	m.mu.Unlock()
	m.logger.Info("decommissioned node removed from the cluster", "node", id)
	return nil
}
