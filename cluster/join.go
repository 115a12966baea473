package cluster

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// JoinInfo is what a node joining the cluster learns from the controller:
// the voters of the metadata group and the registered nodes (with their
// internal addresses, so its transport reaches them before it has applied
// the metadata log).
type JoinInfo struct {
	Voters []uint64
	Nodes  []NodeInfo
}

// AddNode admits a node outside the controller quorum (on the controller):
// it registers the node, then adds it to the metadata group as a learner
// so the node receives the metadata log (an observer, as in KRaft). It is
// idempotent: a node that restarts asks again. The node opens its metadata
// replica with Config.Join and registers itself once it has the log.
func (m *Metadata) AddNode(ctx context.Context, info NodeInfo) (JoinInfo, error) {
	if info.ID == 0 || info.InternalAddr == "" {
		return JoinInfo{}, &InvalidError{Field: "node", Reason: "a joining node needs an id and an internal address"}
	}
	if !m.part.IsLeader() {
		return JoinInfo{}, &NotControllerError{Leader: m.part.Leader()}
	}
	if old, ok := m.State().Nodes[info.ID]; !ok || *old != info {
		m.proposeMu.Lock()
		_, err := m.propose(ctx, &command{Type: cmdRegisterNode, Node: &info})
		m.proposeMu.Unlock()
		if err != nil {
			return JoinInfo{}, err
		}
	}
	backoff := 10 * time.Millisecond
	for {
		st := m.part.Status()
		if slices.Contains(st.Voters, info.ID) || slices.Contains(st.Learners, info.ID) {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.part.ChangeReplicas(cctx, replication.ReplicaChange{Type: replication.AddLearner, NodeID: info.ID})
		cancel()
		if err == nil {
			continue
		}
		var nl *replication.NotLeaderError
		if errors.As(err, &nl) {
			return JoinInfo{}, &NotControllerError{Leader: nl.Leader}
		}
		if !errors.Is(err, replication.ErrConfChangeInProgress) && !errors.Is(err, replication.ErrUnknownOutcome) {
			return JoinInfo{}, err
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 500*time.Millisecond)
		case <-ctx.Done():
			return JoinInfo{}, ctx.Err()
		case <-m.stop:
			return JoinInfo{}, ErrClosed
		}
	}
	m.logger.Info("node joined the metadata group", "node", info.ID, "addr", info.InternalAddr)
	ji := JoinInfo{Voters: m.part.Status().Voters}
	for _, n := range m.State().Nodes {
		ji.Nodes = append(ji.Nodes, *n)
	}
	slices.SortFunc(ji.Nodes, func(a, b NodeInfo) int { return int(a.ID) - int(b.ID) })
	return ji, nil
}
