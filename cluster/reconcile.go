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
// state change and every ReconcileInterval.
func (m *Metadata) reconcileLoop() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.ReconcileInterval)
	defer tick.Stop()
	applied := map[uint64]replication.PartitionConfig{}
	first := true
	for {
		ch := m.Changed()
		s := m.State()
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
			if spec.Voters[0] == m.cfg.NodeID && p.Leader() == 0 {
				m.campaignSoon(id)
			}
			continue
		}
		if cfg, seen := applied[id]; !seen || cfg != spec.Config {
			p.UpdateConfig(spec.Config)
			applied[id] = spec.Config
		}
	}
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
// partition into an election (every campaignEvery).
const (
	campaignAttempts = 50
	campaignEvery    = 20 * time.Millisecond
)

// campaignSoon makes this node, the preferred leader of a partition it
// has just opened, campaign for it: the first leaders then follow the
// placement, spread over the nodes, instead of whoever times out first. A
// new group cannot campaign before its bootstrap configuration applies,
// so the campaign loop retries until a leader is known.
func (m *Metadata) campaignSoon(groupID uint64) {
	m.mu.Lock()
	m.mu.campaign[groupID] = campaignAttempts
	m.mu.Unlock()
	select {
	case m.campaignWake <- struct{}{}:
	default:
	}
}

// campaignLoop runs the campaigns campaignSoon asks for; it sleeps while
// there are none.
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
			m.mu.Lock()
			left := m.mu.campaign[id] - 1
			if !ok || p.Leader() != 0 || left <= 0 {
				delete(m.mu.campaign, id)
				m.mu.Unlock()
				continue
			}
			m.mu.campaign[id] = left
			m.mu.Unlock()
			p.Campaign()
		}
	}
}
