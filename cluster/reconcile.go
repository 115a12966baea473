package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// partitionDir is a partition replica's directory under the host's
// DataDir/partitions. The group id makes a re-created topic's directories
// distinct from the deleted one's.
func partitionDir(topic string, index int32, groupID uint64) string {
	return fmt.Sprintf("%s-%d.%d", topic, index, groupID)
}

// PartitionConfigOf maps a topic's configuration to its partitions'.
func PartitionConfigOf(tc TopicConfig) replication.PartitionConfig {
	pc := replication.PartitionConfig{
		SegmentBytes:  tc.SegmentBytes,
		LogAppendTime: tc.LogAppendTime,
	}
	if tc.RetentionMs >= 0 {
		pc.RetentionMs = max(tc.RetentionMs, 1) // 0 = delete at once; the partition treats <=0 as forever
	}
	if tc.RetentionBytes >= 0 {
		pc.RetentionBytes = max(tc.RetentionBytes, 1)
	}
	return pc
}

// desiredReplicas are the partition replicas the state places on node.
func desiredReplicas(s *State, node uint64) map[uint64]replication.PartitionSpec {
	out := map[uint64]replication.PartitionSpec{}
	for _, t := range s.Topics {
		pc := PartitionConfigOf(t.Config())
		for _, p := range t.Partitions {
			in := slices.Contains(p.Replicas, node)
			if !in && !slices.Contains(p.Target, node) {
				continue
			}
			out[p.GroupID] = replication.PartitionSpec{
				GroupID: p.GroupID,
				Dir:     partitionDir(t.Name, p.Index, p.GroupID),
				Voters:  slices.Clone(p.Replicas),
				Config:  pc,
				Join:    !in, // a move adds it: the leader makes it a learner
			}
		}
	}
	return out
}

// reconcileLoop moves this node's replicas toward the state: it opens the
// replicas placed here, pushes configuration changes, and removes replicas
// (with their data) that the state no longer places here. It runs on each
// state change and every ReconcileInterval. Until this node's registration
// is applied the state may be older than the node's replicas (a restart
// replays its own log first): it only opens replicas then.
func (m *Metadata) reconcileLoop() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.ReconcileInterval)
	defer tick.Stop()
	applied := map[uint64]replication.PartitionConfig{}
	first := true
	for {
		ch := m.Changed()
		s := m.State()
		select {
		case <-m.registered:
		default:
			if m.Err() == nil {
				m.openReplicas(s, applied)
			}
			select {
			case <-ch:
			case <-m.registered:
			case <-m.stop:
				return
			}
			continue
		}
		if m.Err() != nil {
			// The state is frozen at the last record this node could
			// apply; acting on it could remove replicas the cluster
			// still wants. Leave the replicas as they are.
			m.logger.Error("not reconciling replicas: the metadata log cannot be applied")
			<-m.stop
			return
		}
		// A failed step is retried on the next pass; callers waiting for
		// this state are released anyway (their partition reports
		// ErrNotOpen until a pass succeeds).
		if ok := m.reconcile(s, applied, first); ok {
			first = false
		}
		m.mu.Lock()
		if s.Applied > m.mu.reconciled {
			m.mu.reconciled = s.Applied
			close(m.mu.recCh)
			m.mu.recCh = make(chan struct{})
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-tick.C:
		case <-m.stop:
			return
		}
	}
}

// reconcile makes one pass; it reports whether every step succeeded.
func (m *Metadata) reconcile(s *State, applied map[uint64]replication.PartitionConfig, sweep bool) bool {
	host := m.cfg.Host
	want, ok := m.openReplicas(s, applied)
	for _, p := range host.Partitions() {
		id := p.GroupID()
		if id == MetadataGroupID {
			continue
		}
		if _, keep := want[id]; keep {
			continue
		}
		if err := host.RemovePartition(id); err != nil {
			m.logger.Error("removing partition replica", "group", id, "err", err)
			ok = false
			continue
		}
		delete(applied, id)
		m.logger.Info("removed partition replica", "group", id)
	}
	if sweep && ok {
		m.sweepOrphans(want)
	}
	return ok
}

// openReplicas opens the replicas s places here and pushes configuration
// changes to the open ones. It returns the replicas s wants and whether
// every step succeeded.
func (m *Metadata) openReplicas(s *State, applied map[uint64]replication.PartitionConfig) (map[uint64]replication.PartitionSpec, bool) {
	host := m.cfg.Host
	want := desiredReplicas(s, m.cfg.NodeID)
	ok := true
	for _, id := range sortedKeys(want) {
		spec := want[id]
		p, open := host.Partition(id)
		if !open {
			var err error
			p, err = host.OpenPartition(spec)
			if err != nil {
				m.logger.Error("opening partition replica", "group", id, "dir", spec.Dir, "err", err)
				ok = false
				continue
			}
			m.logger.Debug("opened partition replica", "group", id, "dir", spec.Dir)
			applied[id] = spec.Config
			switch st := p.Status(); {
			case spec.Join || st.Leader != 0:
			case spec.Voters[0] == m.cfg.NodeID:
				m.campaignSoon(id)
			case st.Term <= 1: // a new group, not one recovered at start
				m.handOverSoon(id, spec.Voters[0])
			}
			continue
		}
		if cfg, seen := applied[id]; !seen || cfg != spec.Config {
			p.UpdateConfig(spec.Config)
			applied[id] = spec.Config
		}
	}
	return want, ok
}

// sweepOrphans deletes partition directories no replica uses: a topic
// deleted while this node was down, or a removal cut short by a crash.
func (m *Metadata) sweepOrphans(want map[uint64]replication.PartitionSpec) {
	root := filepath.Join(m.cfg.DataDir, "partitions")
	if m.cfg.DataDir == "" {
		return
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	keep := map[string]bool{MetadataTopic + "-0": true}
	for _, spec := range want {
		keep[spec.Dir] = true
	}
	for _, e := range ents {
		if !e.IsDir() || keep[e.Name()] {
			continue
		}
		m.logger.Info("deleting orphaned partition directory", "dir", e.Name())
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			m.logger.Warn("deleting orphaned partition directory", "dir", e.Name(), "err", err)
		}
	}
}

// waitReconciled waits until the replicas reflect the state at applied.
func (m *Metadata) waitReconciled(ctx context.Context, applied uint64) error {
	for {
		m.mu.Lock()
		done, ch := m.mu.reconciled >= applied, m.mu.recCh
		m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.stop:
			return ErrClosed
		}
	}
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	ks := make([]uint64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// campaignAttempts bounds how often a preferred leader nudges its new
// partition into an election, and handOverAttempts how long another
// replica watches for winning that election instead (every campaignEvery).
const (
	campaignAttempts = 50
	handOverAttempts = 500
	campaignEvery    = 20 * time.Millisecond
)

// campaign is a pending entry of campaignLoop: a campaign of the preferred
// leader, or a hand-over to it (handOverTo) should this replica win.
type campaign struct {
	left       int    // attempts left
	term       uint64 // the replica's term at the first campaign (0: none yet)
	handOverTo uint64
}

// campaignSoon makes this node, the preferred leader of a partition it
// has just opened, campaign for it: the first leaders then follow the
// placement, spread over the nodes, instead of whoever times out first. A
// new group cannot campaign before its bootstrap configuration applies,
// so the campaign loop retries until a leader is known.
func (m *Metadata) campaignSoon(groupID uint64) {
	m.setCampaign(groupID, &campaign{left: campaignAttempts})
}

// handOverSoon makes this node, a replica of a partition it has just
// opened that prefers another leader, hand the leadership to that leader
// should it win the first election: a replica that opened earlier (the
// controller applies a creation first) can time out and win before the
// preferred leader even opened its replica, and without this the
// leadership would stay off placement until the next BalanceLeaders.
func (m *Metadata) handOverSoon(groupID, preferred uint64) {
	m.setCampaign(groupID, &campaign{left: handOverAttempts, handOverTo: preferred})
}

func (m *Metadata) setCampaign(groupID uint64, c *campaign) {
	m.mu.Lock()
	m.mu.campaign[groupID] = c
	m.mu.Unlock()
	select {
	case m.campaignWake <- struct{}{}:
	default:
	}
}

// campaignLoop runs the campaigns and hand-overs campaignSoon and
// handOverSoon ask for; it sleeps while there are none.
//
// A campaign is repeated only while the replica's term has not moved
// since the first attempt: until then the attempts may have been refused
// (bootstrap configuration not applied yet) or be in the pre-vote phase,
// which a new attempt merely restarts. Once the term moved, an election
// is under way (this replica's, as a candidate, or another's) and raft
// finishes it: a new attempt would turn a candidate back into a
// pre-candidate and throw away the votes of its term, and on a loaded
// node, where a vote round trip takes longer than campaignEvery, every
// attempt would abort the election before it could be won.
func (m *Metadata) campaignLoop() {
	defer m.wg.Done()
	tick := time.NewTicker(campaignEvery)
	defer tick.Stop()
	for {
		m.mu.Lock()
		idle := len(m.mu.campaign) == 0
		m.mu.Unlock()
		if idle {
			select {
			case <-m.campaignWake:
			case <-m.stop:
				return
			}
		}
		select {
		case <-tick.C:
		case <-m.stop:
			return
		}
		m.mu.Lock()
		ids := sortedKeys(m.mu.campaign)
		m.mu.Unlock()
		for _, id := range ids {
			p, ok := m.cfg.Host.Partition(id)
			var st replication.PartitionStatus
			if ok {
				st = p.Status()
			}
			m.mu.Lock()
			c := m.mu.campaign[id]
			c.left--
			left, term, to := c.left, c.term, c.handOverTo
			if to == 0 && term == 0 {
				c.term = max(st.Term, 1)
			}
			decommissioned := m.mu.state.Decommissioned[to]
			m.mu.Unlock()
			done := !ok || left <= 0
			switch {
			case done:
			case to != 0:
				done = decommissioned || (st.Leader != 0 && (!st.IsLeader || m.handOver(p, st, to)))
			case st.Leader != 0 || (term != 0 && st.Term > term):
				done = true
			default:
				p.Campaign()
			}
			if done {
				m.mu.Lock()
				if m.mu.campaign[id] == c {
					delete(m.mu.campaign, id)
				}
				m.mu.Unlock()
			}
		}
	}
}

// handOver starts a leadership transfer of p, led here, to its preferred
// leader once that replica can take it (see BalanceLeaders); it reports
// whether there is nothing more to do.
func (m *Metadata) handOver(p *replication.Partition, st replication.PartitionStatus, pref uint64) bool {
	for _, r := range st.Replicas {
		if r.NodeID == pref && r.Active && r.Lag <= promoteLag && r.Match > 0 {
			m.logger.Debug("handing a new partition to its preferred leader", "group", p.GroupID(), "to", pref)
			p.TransferLeadership(pref)
			return true
		}
	}
	return false
}
