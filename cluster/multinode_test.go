package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// threeNodes starts three nodes whose metadata group has all three as
// voters, linked by an in-process network; forwarded commands go straight
// to the controller's Metadata.
func threeNodes(t *testing.T, opts ...func(*Config)) (map[uint64]*node, *replication.MemNetwork) {
	t.Helper()
	net := replication.NewMemNetwork()
	dirs := map[uint64]string{1: t.TempDir(), 2: t.TempDir(), 3: t.TempDir()}
	rack := func(c *Config) { c.Rack = fmt.Sprintf("r%d", c.NodeID%2) }
	nodes, stop := startThreeIn(t, net, dirs, nil, append([]func(*Config){rack}, opts...)...)
	t.Cleanup(func() {
		stop()
		net.Close()
	})
	return nodes, net
}

// eventually polls cond until it holds; the deadline only guards a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// controller waits for the node that leads the metadata group now. Under
// load the controller can move (an election timeout of the test's 10ms
// ticks is short): steps that need it look it up again.
func controller(t *testing.T, nodes map[uint64]*node) *node {
	t.Helper()
	var ctl *node
	eventually(t, "a controller", func() bool {
		for _, n := range nodes {
			if n.md.IsController() {
				ctl = n
				return true
			}
		}
		return false
	})
	return ctl
}

// onController runs f on the controller, again on the new one while the
// controller moves under it.
func onController(t *testing.T, nodes map[uint64]*node, f func(ctl *node) error) {
	t.Helper()
	for {
		err := f(controller(t, nodes))
		if _, moved := err.(*NotControllerError); !moved {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
	}
}

func TestThreeNodesShareMetadataAndReconcile(t *testing.T) {
	nodes, _ := threeNodes(t)
	ctl := controller(t, nodes)
	eventually(t, "every node sees three registered nodes", func() bool {
		for _, n := range nodes {
			if len(n.md.State().Nodes) != 3 {
				return false
			}
		}
		return true
	})
	ids := map[string]bool{}
	for _, n := range nodes {
		ids[n.md.State().ClusterID] = true
	}
	if len(ids) != 1 {
		t.Fatalf("cluster ids %v", ids)
	}
	ctx := ctxT(t)
	eventually(t, "the controller hears from every voter", func() bool {
		ctl := controller(t, nodes)
		for id := range nodes {
			if !ctl.md.Alive(id) {
				return false
			}
		}
		return true
	})
	var top *Topic
	onController(t, nodes, func(ctl *node) (err error) {
		top, err = ctl.md.CreateTopic(ctx, TopicSpec{Name: "replicated", Partitions: 3, ReplicationFactor: 3})
		return err
	})
	leaders := map[uint64]int{}
	for _, p := range top.Partitions {
		leaders[p.Replicas[0]]++
	}
	if len(leaders) != 3 {
		t.Fatalf("preferred leaders not spread: %v", top.Partitions)
	}
	// Every node applies the creation and opens its replicas.
	eventually(t, "every node opens its replicas", func() bool {
		for _, n := range nodes {
			for i := range int32(3) {
				if _, _, err := n.md.Partition("replicated", i); err != nil {
					return false
				}
			}
		}
		return true
	})
	// The preferred leaders campaign first: leadership follows placement.
	eventually(t, "each node leads the partition placed first on it", func() bool {
		for _, pi := range top.Partitions {
			n := nodes[pi.Replicas[0]]
			p, _, _ := n.md.Partition("replicated", pi.Index)
			if p == nil || !p.IsLeader() {
				return false
			}
		}
		return true
	})
	// The replicas form one Raft group per partition: a batch appended on
	// the leader reaches every replica.
	data, err := encodeCommand(&command{Type: "payload"}, 1) // any stored batch will do
	if err != nil {
		t.Fatal(err)
	}
	for {
		var leader *replication.Partition
		eventually(t, "partition 0 elects a leader", func() bool {
			for _, n := range nodes {
				if p, _, _ := n.md.Partition("replicated", 0); p != nil && p.IsLeader() {
					leader = p
					return true
				}
			}
			return false
		})
		_, err := leader.Produce(ctx, replication.ProduceBatch{Data: data, Records: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
			replication.AcksAll)
		if _, moved := err.(*replication.NotLeaderError); moved {
			continue // not written: the leadership moved under load
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	eventually(t, "every replica has the batch", func() bool {
		for _, n := range nodes {
			if p, _, _ := n.md.Partition("replicated", 0); p == nil || p.HighWatermark() != 1 {
				return false
			}
		}
		return true
	})
	// A follower takes producer ids through the controller.
	ctl = controller(t, nodes)
	var follower *node
	for id, n := range nodes {
		if id != ctl.md.NodeID() {
			follower = n
		}
	}
	a, err := follower.md.NextProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ctl.md.NextProducerID(ctx)
	if err != nil || a == b {
		t.Fatalf("producer ids %d and %d (%v)", a, b, err)
	}
	// Topic changes are the controller's: a follower says who it is.
	for {
		ctl = controller(t, nodes)
		for id, n := range nodes {
			if id != ctl.md.NodeID() {
				follower = n
			}
		}
		_, err := follower.md.CreateTopic(ctx, TopicSpec{Name: "elsewhere"})
		if now := controller(t, nodes); now != ctl {
			if err == nil {
				onController(t, nodes, func(ctl *node) error { return ctl.md.DeleteTopic(ctx, "elsewhere") })
			}
			continue // the controller moved meanwhile: ask again
		}
		if err == nil {
			t.Fatal("a follower created a topic")
		} else if nc, ok := err.(*NotControllerError); !ok || nc.Leader != ctl.md.NodeID() {
			t.Fatalf("follower: %v", err)
		}
		break
	}
	// Deletion removes the replicas everywhere.
	onController(t, nodes, func(ctl *node) error { return ctl.md.DeleteTopic(ctx, "replicated") })
	eventually(t, "every node removes its replicas", func() bool {
		for _, n := range nodes {
			if len(n.host.Partitions()) != 1 {
				return false
			}
		}
		return true
	})
}
