package cluster

import (
	"testing"
)

// A replica that opened a new partition before its preferred leader could
// win the first election (the controller applies a creation first); it
// hands the leadership over once the preferred replica has caught up,
// without waiting for the periodic BalanceLeaders (disabled here).
func TestNewPartitionLeadershipMovesToALatePreferredLeader(t *testing.T) {
	nodes, net := threeNodes(t, func(c *Config) { c.LeaderBalanceInterval = -1 })
	ctl := controller(t, nodes)
	var late uint64 // a node other than the controller, cut off while the topic is created
	var others []uint64
	for id := range nodes {
		if id != ctl.md.NodeID() && late == 0 {
			late = id
		} else {
			others = append(others, id)
		}
	}
	ctx := ctxT(t)
	net.Isolate(late, others...)
	var top *Topic
	onController(t, nodes, func(ctl *node) (err error) {
		top, err = ctl.md.CreateTopic(ctx, TopicSpec{Name: "late", Partitions: 3, ReplicationFactor: 3})
		return err
	})
	var pi PartitionInfo
	for _, p := range top.Partitions {
		if p.Replicas[0] == late {
			pi = p
		}
	}
	if pi.Replicas == nil {
		t.Fatalf("no partition prefers node %d: %v", late, top.Partitions)
	}
	eventually(t, "the reachable replicas elect a leader", func() bool {
		for _, id := range others {
			if p, _, _ := nodes[id].md.Partition("late", pi.Index); p != nil && p.IsLeader() {
				return true
			}
		}
		return false
	})
	net.HealAll()
	eventually(t, "the preferred leader leads", func() bool {
		p, _, _ := nodes[late].md.Partition("late", pi.Index)
		return p != nil && p.IsLeader()
	})
}
