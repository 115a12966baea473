package cluster

import (
	"time"
)

// BalanceLeaders hands the leadership of every partition this node leads
// to its preferred leader (the first replica) when that replica is an
// active voter at most promoteLag entries behind (raft lets it catch up
// before it hands over). Placement spreads preferred leaders evenly, so this
// spreads leadership evenly too (Kafka's preferred leader election). It
// returns the number of transfers started.
func (m *Metadata) BalanceLeaders() int {
	s := m.State()
	n := 0
	for _, name := range s.TopicNames() {
		for _, pi := range s.Topics[name].Partitions {
			if pi.Target != nil || len(pi.Replicas) < 2 || pi.Replicas[0] == m.cfg.NodeID {
				continue
			}
			p, ok := m.cfg.Host.Partition(pi.GroupID)
			if !ok || !p.IsLeader() {
				continue
			}
			pref := pi.Replicas[0]
			if s.Decommissioned[pref] {
				continue
			}
			st := p.Status()
			for _, r := range st.Replicas {
				if r.NodeID == pref && r.Active && r.Lag <= promoteLag && r.Match > 0 {
					p.TransferLeadership(pref)
					n++
				}
			}
		}
	}
	if n > 0 {
		m.logger.Info("moving leadership to preferred leaders", "transfers", n)
	}
	return n
}

// balanceLoop runs BalanceLeaders every LeaderBalanceInterval.
func (m *Metadata) balanceLoop() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.LeaderBalanceInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			m.BalanceLeaders()
		case <-m.stop:
			return
		}
	}
}
