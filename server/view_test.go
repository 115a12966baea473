package server_test

import (
	"testing"
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// Every node answers leaders, lag and partition health for the whole
// cluster, including partitions it holds no replica of.
func TestClusterWideViewFromAnyNode(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "solo", Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "trio", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		produceN(t, c.Nodes[0], "solo", p, 1)
		produceN(t, c.Nodes[0], "trio", p, 1)
	}
	for _, n := range c.Nodes {
		for p := range int32(3) {
			pm := waitMeta(t, n, "solo", p, "a leader known to every node", func(pm *sluicev1.PartitionMetadata) bool {
				return pm.GetLeader() > 0
			})
			if pm.GetLeader() != pm.GetReplicas()[0] {
				t.Fatalf("node %d: solo-%d led by %d, replicas %v", n.Config.NodeID, p, pm.GetLeader(), pm.GetReplicas())
			}
		}
	}
	health := func(n *servertest.Node) (int32, int32) {
		dc, err := n.Cluster.DescribeCluster(ctx, &sluicev1.DescribeClusterRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return dc.GetUnderReplicatedPartitions(), dc.GetLeaderlessPartitions()
	}
	waitHealth := func(n *servertest.Node, under, leaderless int32) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			u, l := health(n)
			if u == under && l == leaderless {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: under-replicated %d, leaderless %d; want %d, %d", n.Config.NodeID, u, l, under, leaderless)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitHealth(c.Nodes[1], 0, 0)
	// Cut node 3 off from its Raft peers: every replicated partition
	// (internal topics included) is under-replicated, led by node 1 or 2
	// with node 3 behind.
	c.Network.Isolate(3, 1, 2)
	md, err := c.Nodes[0].Cluster.GetMetadata(ctx, &sluicev1.GetMetadataRequest{IncludeInternal: true})
	if err != nil {
		t.Fatal(err)
	}
	var replicated int32
	for _, tm := range md.GetTopics() {
		for _, pm := range tm.GetPartitions() {
			if len(pm.GetReplicas()) > 1 {
				replicated++
			}
		}
	}
	// The cut is between Raft peers only: node 3 still reports the
	// partitions it leads alone, so none is leaderless.
	waitHealth(c.Nodes[0], replicated, 0)
	for p := range int32(3) {
		produceN(t, c.Nodes[0], "trio", p, 3)
	}
	// (The view may be a second old: wait for it to show the lag.)
	deadline := time.Now().Add(60 * time.Second)
	for behind := 0; behind < 3; {
		d, err := c.Nodes[1].Admin.DescribeTopic(ctx, &sluicev1.DescribeTopicRequest{Name: "trio"})
		if err != nil {
			t.Fatal(err)
		}
		behind = 0
		for _, pd := range d.GetTopic().GetPartitions() {
			for _, r := range pd.GetReplicas() {
				if r.GetNodeId() == 3 && r.GetLag() > 0 && pd.GetHighWatermark() == 4 {
					behind++
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 3 not reported behind while cut off: %v", d.GetTopic().GetPartitions())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Network.HealAll()
	waitHealth(c.Nodes[2], 0, 0)
}
