package server_test

import (
	"testing"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// A Consume stream on a node with no replica of a partition reads it
// through a node that has one: the backlog, then batches pushed as they
// are produced; a seek restarts it; an out-of-range start is reported.
func TestConsumeThroughNodeWithoutReplica(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	resp, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "far", Partitions: 1, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	home := resp.GetTopic().GetPartitions()[0].GetReplicas()[0].GetNodeId()
	var n *servertest.Node
	for _, nd := range c.Nodes {
		if int32(nd.Config.NodeID) != home {
			n = nd
			break
		}
	}
	produceN(t, c.Nodes[home-1], "far", 0, 3)
	cc := openConsume(t, n, n.Consumer)
	cc.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{Topic: "far"}}})
	cc.credit(1 << 20)
	for want := int64(0); want < 3; want++ {
		m := cc.recv()
		if m.GetBatch().GetBatch().GetBaseOffset() != want || m.GetBatch().GetPartition() != 0 {
			t.Fatalf("want the batch at %d, got %v", want, m)
		}
	}
	produceN(t, c.Nodes[home-1], "far", 0, 1)
	if m := cc.recv(); m.GetBatch().GetBatch().GetBaseOffset() != 3 || m.GetBatch().GetHighWatermark() != 4 {
		t.Fatalf("pushed %v", m)
	}
	cc.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Seek{Seek: &sluicev1.Seek{Topic: "far", Partition: 0,
		Position: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Offset{Offset: 1}}}}})
	if m := cc.recv(); m.GetBatch().GetBatch().GetBaseOffset() != 1 {
		t.Fatalf("after seek to 1: %v", m)
	}
	cc.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{
		Topic: "far", Start: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Offset{Offset: 9}}}}})
	for {
		m := cc.recv()
		if m.GetBatch() != nil {
			continue // the rest of the seek's backlog
		}
		if pe := m.GetPartitionError(); pe.GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE {
			t.Fatalf("out-of-range subscription: %v", m)
		}
		break
	}
}
