package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// joinFourth adds node 4 to a threeNodes cluster the way a server joins
// one: the controller registers it and makes it a learner of the metadata
// group, then it opens its metadata replica with Join.
func joinFourth(t *testing.T, nodes map[uint64]*node, net *replication.MemNetwork) *node {
	t.Helper()
	h, err := replication.NewHost(replication.HostConfig{NodeID: 4, DataDir: t.TempDir(), Transport: net.Transport(4),
		TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	info := NodeInfo{ID: 4, Addr: "127.0.0.4:9700", InternalAddr: "127.0.0.4:9701"}
	ctx := ctxT(t)
	var ji JoinInfo
	onController(t, nodes, func(ctl *node) (err error) {
		ji, err = ctl.md.AddNode(ctx, info)
		return err
	})
	forward := func(ctx context.Context, to NodeInfo, cmd []byte) (uint64, error) {
		n := nodes[to.ID]
		if n == nil {
			return 0, &NotControllerError{}
		}
		return n.md.HandleForwarded(ctx, cmd)
	}
	md, err := Open(ctx, Config{NodeID: 4, Host: h, Addr: info.Addr, InternalAddr: info.InternalAddr,
		Voters: ji.Voters, Join: true, Forward: forward})
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	n := &node{host: h, md: md}
	t.Cleanup(func() {
		_ = md.Close()
		_ = h.Close()
	})
	return n
}

// A decommissioned node leaves the registry once its replicas have moved
// away: no node lists it, the metadata group lets it go, placement cannot
// pick it, and its id cannot register again.
func TestDecommissionedNodeLeavesTheRegistry(t *testing.T) {
	nodes, net := threeNodes(t)
	fourth := joinFourth(t, nodes, net)
	ctx := ctxT(t)
	var top *Topic
	onController(t, nodes, func(ctl *node) (err error) {
		top, err = ctl.md.CreateTopic(ctx, TopicSpec{Name: "d", Partitions: 4, ReplicationFactor: 2})
		return err
	})
	on4 := 0
	for _, p := range top.Partitions {
		if slices.Contains(p.Replicas, 4) {
			on4++
		}
	}
	if on4 == 0 {
		t.Fatalf("no replica placed on node 4: %v", top.Partitions)
	}
	eventually(t, "node 4 opens its replicas", func() bool { return len(fourth.host.Partitions()) == 1+on4 })

	var moved int
	onController(t, nodes, func(ctl *node) (err error) {
		moved, err = ctl.md.DecommissionNode(ctx, 4)
		return err
	})
	if moved != on4 {
		t.Fatalf("%d replicas set to move, want %d", moved, on4)
	}
	eventually(t, "every node drops node 4 from the registry", func() bool {
		for _, n := range nodes {
			s := n.md.State()
			if _, ok := s.Nodes[4]; ok || !s.Decommissioned[4] {
				return false
			}
			for _, tp := range s.Topics {
				for _, p := range tp.Partitions {
					if slices.Contains(p.Replicas, 4) || slices.Contains(p.Target, 4) {
						return false
					}
				}
			}
		}
		return true
	})
	eventually(t, "the metadata group lets node 4 go", func() bool {
		st := controller(t, nodes).md.part.Status()
		return !slices.Contains(st.Voters, 4) && !slices.Contains(st.Learners, 4)
	})
	eventually(t, "node 4 removes its replicas", func() bool { return len(fourth.host.Partitions()) <= 1 })

	onController(t, nodes, func(ctl *node) (err error) {
		top, err = ctl.md.CreateTopic(ctx, TopicSpec{Name: "after", Partitions: 8, ReplicationFactor: 3})
		return err
	})
	for _, p := range top.Partitions {
		if slices.Contains(p.Replicas, 4) {
			t.Fatalf("partition %d placed on the removed node: %v", p.Index, p.Replicas)
		}
	}
	onController(t, nodes, func(ctl *node) error {
		_, err := ctl.md.AddNode(ctx, NodeInfo{ID: 4, Addr: "127.0.0.4:9700", InternalAddr: "127.0.0.4:9701"})
		if _, ok := err.(*InvalidError); err == nil || !ok {
			t.Fatalf("the removed node joined again: %v", err)
		}
		return nil
	})
}
