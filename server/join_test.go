package server_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// A node outside the controller quorum joins a running cluster by
// address, is placed replicas of new topics, serves them, and keeps its
// identity and data across a restart.
func TestNodeJoinsRunningCluster(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	n4 := c.Join(t, 4)
	waitNodes(t, c.Nodes[0], 4)
	waitNodes(t, n4, 4)
	resp, err := n4.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "spread", Partitions: 8, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	var on4 []int32
	for _, p := range resp.GetTopic().GetPartitions() {
		for _, r := range p.GetReplicas() {
			if r.GetNodeId() == 4 {
				on4 = append(on4, p.GetPartition())
			}
		}
	}
	if len(on4) == 0 {
		t.Fatalf("no replica placed on the joined node: %v", resp.GetTopic())
	}
	for round := range 3 {
		for p := range int32(8) {
			r, err := n4.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "spread", Partition: proto.Int32(p),
				Batch: &sluicev1.RecordBatch{Records: records(1, "j")}})
			if err != nil {
				t.Fatalf("produce to partition %d through the joined node: %v", p, err)
			}
			if r.GetBaseOffset() != int64(round) {
				t.Fatalf("partition %d: offset %d, want %d", p, r.GetBaseOffset(), round)
			}
		}
	}
	// The joined node's own replicas hold the records.
	for _, p := range on4 {
		waitRecords(t, n4, "spread", p, 3)
	}
	n4 = n4.Restart(t)
	c.Nodes[3] = n4
	waitNodes(t, n4, 4)
	for _, p := range on4 {
		waitRecords(t, n4, "spread", p, 3)
	}
	if _, err := n4.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "spread", Partition: proto.Int32(on4[0]),
		Batch: &sluicev1.RecordBatch{Records: records(1, "after")}}); err != nil {
		t.Fatalf("produce after the joined node restarted: %v", err)
	}
}

// waitNodes waits until n's view of the cluster has want live nodes.
func waitNodes(t *testing.T, n *servertest.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		dc, err := n.Cluster.DescribeCluster(ctxT(t), &sluicev1.DescribeClusterRequest{})
		if err == nil && len(dc.GetNodes()) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d sees %v (%v), want %d nodes", n.Config.NodeID, dc.GetNodes(), err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRecords waits until n's own replica of a partition serves want records.
func waitRecords(t *testing.T, n *servertest.Node, topic string, p int32, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := 0
		for _, b := range fetchAll(t, n, topic, p, 0, 0) {
			got += len(b.GetRecords())
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d partition %d: %d records, want %d", n.Config.NodeID, p, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
