package server_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

func TestAnyNodeAnswersInAThreeNodeCluster(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	dc, err := c.Nodes[2].Cluster.DescribeCluster(ctx, &sluicev1.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.GetNodes()) != 3 || dc.GetControllerId() <= 0 {
		t.Fatalf("cluster: %v", dc)
	}
	for _, nd := range dc.GetNodes() {
		if !nd.GetAlive() || !nd.GetControllerVoter() {
			t.Fatalf("node %v", nd)
		}
	}
	// A topic created through each node (forwarded to the controller).
	for i, n := range c.Nodes {
		name := []string{"t1", "t2", "t3"}[i]
		resp, err := n.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: name, Partitions: 3, ReplicationFactor: 3})
		if err != nil {
			t.Fatalf("create through node %d: %v", i+1, err)
		}
		if len(resp.GetTopic().GetPartitions()) != 3 || resp.GetTopic().GetReplicationFactor() != 3 {
			t.Fatalf("created %v", resp.GetTopic())
		}
	}
	// Produce through every node to every partition: forwarded to leaders.
	want := map[int32]int64{}
	for round := range 2 {
		for i, n := range c.Nodes {
			for p := range int32(3) {
				resp, err := n.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "t1", Partition: proto.Int32(p),
					Batch: &sluicev1.RecordBatch{Records: records(1, "m")}})
				if err != nil {
					t.Fatalf("round %d: produce through node %d to partition %d: %v", round, i+1, p, err)
				}
				if resp.GetBaseOffset() != want[p] {
					t.Fatalf("partition %d: offset %d, want %d", p, resp.GetBaseOffset(), want[p])
				}
				want[p]++
			}
		}
	}
	// Every replica has every record (reads are served by each node's
	// own replica, up to its high watermark).
	for i, n := range c.Nodes {
		for p := range int32(3) {
			deadline := time.Now().Add(30 * time.Second)
			for {
				got := 0
				for _, b := range fetchAll(t, n, "t1", p, 0, 0) {
					got += len(b.GetRecords())
				}
				if int64(got) == want[p] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d partition %d: %d records, want %d", i+1, p, got, want[p])
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	md, err := c.Nodes[0].Cluster.GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: []string{"t1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range md.GetTopics()[0].GetPartitions() {
		if p.GetLeader() <= 0 || len(p.GetReplicas()) != 3 {
			t.Fatalf("partition metadata %v", p)
		}
	}
	// Producer ids come from the controller's blocks, whichever node asks.
	seen := map[int64]bool{}
	for _, n := range c.Nodes {
		ip, err := n.Producer.InitProducer(ctx, &sluicev1.InitProducerRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[ip.GetProducerId()] {
			t.Fatalf("producer id %d handed out twice", ip.GetProducerId())
		}
		seen[ip.GetProducerId()] = true
	}
	// Deleting through a follower removes the topic everywhere.
	if _, err := c.Nodes[1].Admin.DeleteTopic(ctx, &sluicev1.DeleteTopicRequest{Name: "t2"}); err != nil {
		t.Fatal(err)
	}
}

func TestRequestsReachNodesWithoutReplicas(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	resp, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "single", Partitions: 3, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.GetTopic().GetPartitions() {
		home := p.GetReplicas()[0].GetNodeId()
		for i, n := range c.Nodes {
			if int32(i+1) == home {
				continue // ask the nodes that do not hold it
			}
			pr := produce(t, n, "single", p.GetPartition(), records(1, "x")) // retries while the partition opens
			bs := fetchAll(t, n, "single", p.GetPartition(), pr.GetBaseOffset(), 0)
			if len(bs) != 1 {
				t.Fatalf("fetch through node %d: %v", i+1, bs)
			}
			lo, err := n.Admin.ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: "single", Partitions: []int32{p.GetPartition()}})
			if err != nil || lo.GetOffsets()[0].GetOffset() != pr.GetBaseOffset()+1 {
				t.Fatalf("list offsets through node %d: %v %v", i+1, lo, err)
			}
		}
	}
}

func TestProduceSurvivesAnIsolatedLeader(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "ha", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	// produce retries until acknowledged; every acknowledged record must
	// survive.
	acked := map[int64]string{}
	produceVia := func(n *servertest.Node, v string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := n.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "ha", Partition: proto.Int32(0), TimeoutMs: 500,
				Batch: &sluicev1.RecordBatch{Records: []*sluicev1.Record{{Value: []byte(v)}}}})
			if err == nil {
				acked[resp.GetBaseOffset()] = v
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("produce %s: %v", v, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := range 5 {
		produceVia(c.Nodes[i%3], "before-"+itoa(int64(i)))
	}
	md, err := c.Nodes[0].Cluster.GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: []string{"ha"}})
	if err != nil {
		t.Fatal(err)
	}
	old := uint64(md.GetTopics()[0].GetPartitions()[0].GetLeader())
	var others []uint64
	var survivor *servertest.Node
	for _, n := range c.Nodes {
		if n.Config.NodeID != old {
			others = append(others, n.Config.NodeID)
			survivor = n
		}
	}
	c.Network.Isolate(old, others...)
	for i := range 5 {
		produceVia(survivor, "after-"+itoa(int64(i)))
	}
	c.Network.HealAll()
	for _, n := range c.Nodes {
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := map[int64]string{}
			for _, b := range fetchAll(t, n, "ha", 0, 0, 0) {
				for i, r := range b.GetRecords() {
					got[b.GetBaseOffset()+int64(i)] = string(r.GetValue())
				}
			}
			missing := 0
			for off, v := range acked {
				if got[off] != v {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d lacks %d acknowledged records: %v vs %v", n.Config.NodeID, missing, got, acked)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestRestartedNodeCatchesUp(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "cu", Partitions: 2, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	c.Nodes[2].Stop(t)
	for i := range 10 {
		if _, err := c.Nodes[i%2].Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "cu", Partition: proto.Int32(int32(i % 2)),
			Batch: &sluicev1.RecordBatch{Records: records(1, "w")}}); err != nil {
			t.Fatalf("produce with a node down: %v", err)
		}
	}
	// The stopped node may have been the controller: until a new one is elected
	// (and known to node 1) the call is UNAVAILABLE, which clients retry.
	var createErr error
	eventuallyT(t, func() bool {
		_, createErr = c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "later", Partitions: 1, ReplicationFactor: 2})
		if status.Code(createErr) == codes.Unavailable {
			time.Sleep(50 * time.Millisecond)
			return false
		}
		return true
	})
	if createErr != nil {
		t.Fatalf("create with a node down: %v", createErr)
	}
	back := servertest.Start(t, c.Nodes[2].Config)
	for p := range int32(2) {
		eventuallyT(t, func() bool {
			n := 0
			for _, b := range fetchAll(t, back, "cu", p, 0, 0) {
				n += len(b.GetRecords())
			}
			return n == 5
		})
	}
	lt, err := back.Admin.ListTopics(ctx, &sluicev1.ListTopicsRequest{})
	if err != nil || len(lt.GetTopics()) != 2 {
		t.Fatalf("topics on the restarted node: %v %v", lt, err)
	}
}

// A follower cut off from its leader keeps an old high watermark; ListOffsets
// asked through it must still report every record acknowledged with acks=all,
// by asking the leader.
func TestListOffsetsThroughALaggingFollowerAsksTheLeader(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "lo", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	first := produce(t, c.Nodes[0], "lo", 0, records(1, "a")) // retries while the partition opens
	md, err := c.Nodes[0].Cluster.GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: []string{"lo"}})
	if err != nil {
		t.Fatal(err)
	}
	leader := uint64(md.GetTopics()[0].GetPartitions()[0].GetLeader())
	var lead, follower *servertest.Node
	for _, n := range c.Nodes {
		if n.Config.NodeID == leader {
			lead = n
		} else {
			follower = n
		}
	}
	c.Network.Isolate(follower.Config.NodeID, leader)
	next := first.GetBaseOffset() + 1
	for range 5 {
		pr := produce(t, lead, "lo", 0, records(1, "b"))
		next = pr.GetBaseOffset() + 1
	}
	// A retriable error (the leader not known at that moment) may be
	// retried; an answer short of the acknowledged records never.
	for _, spec := range []*sluicev1.OffsetSpec{nil, {Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			lo, err := follower.Admin.ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: "lo", Spec: spec})
			if err != nil {
				t.Fatal(err)
			}
			o := lo.GetOffsets()[0]
			if o.GetError() == nil {
				if o.GetOffset() != next || o.GetHighWatermark() != next {
					t.Fatalf("latest through the cut-off follower %d: %v, want offset and high watermark %d", follower.Config.NodeID, o, next)
				}
				break
			}
			if o.GetError().GetCode() != int32(codes.Unavailable) || time.Now().After(deadline) {
				t.Fatalf("latest through the cut-off follower %d: %v", follower.Config.NodeID, o)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	c.Network.HealAll()
}
