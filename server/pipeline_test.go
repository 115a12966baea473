package server_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// Many batches for one partition in flight on one stream (sent before any
// answer is read) take offsets strictly in send order, on the leader and
// through a node that forwards.
func TestProduceStreamPipelinesInSendOrder(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "pipe", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	const perNode = 150
	var next int64
	var sent []string
	for ni, n := range c.Nodes {
		s, err := n.Producer.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var first []string
		for i := range perNode {
			prefix := fmt.Sprintf("n%d-b%d", ni, i)
			first = append(first, prefix+"-v0")
			req := &sluicev1.ProduceRequest{Topic: "pipe", Partition: proto.Int32(0),
				Batch: &sluicev1.RecordBatch{Records: records(i%3+1, prefix)}}
			if err := s.Send(&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		for i := range perNode {
			r, err := s.Recv()
			if err != nil {
				t.Fatalf("node %d response %d: %v", ni+1, i, err)
			}
			if r.GetError() != nil || r.GetCorrelationId() != uint64(i) {
				t.Fatalf("node %d response %d: %v", ni+1, i, r)
			}
			if got := r.GetResponse().GetBaseOffset(); got != next {
				t.Fatalf("node %d batch %d at offset %d, want %d", ni+1, i, got, next)
			}
			next += int64(i%3 + 1)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("after the last response: %v", err)
		}
		sent = append(sent, first...)
	}
	// The log holds the batches in the order they were sent.
	var got []string
	md, err := c.Nodes[0].Cluster.GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: []string{"pipe"}})
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Nodes[md.GetTopics()[0].GetPartitions()[0].GetLeader()-1]
	for _, b := range fetchAll(t, leader, "pipe", 0, 0, 0) {
		got = append(got, string(b.GetRecords()[0].GetValue()))
	}
	if len(got) != len(sent) {
		t.Fatalf("read %d batches, want %d", len(got), len(sent))
	}
	for i := range sent {
		if got[i] != sent[i] {
			t.Fatalf("batch %d is %q, want %q", i, got[i], sent[i])
		}
	}
}

// While a stream pipelines batches to a partition, its leader is cut off
// from the other replicas: batches in flight may fail (their outcome is
// unknown); every acknowledged batch is in the log at its offset, and
// acknowledged offsets follow the send order, also for a stream after the
// heal.
func TestProduceStreamPipelineSurvivesLeaderChange(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "move", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	pm := waitMeta(t, c.Nodes[0], "move", 0, "led", func(pm *sluicev1.PartitionMetadata) bool { return pm.GetLeader() > 0 })
	leader := uint64(pm.GetLeader())
	n := c.Nodes[leader-1]
	s, err := n.Producer.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const total = 300
	go func() {
		for i := range total {
			req := &sluicev1.ProduceRequest{Topic: "move", Partition: proto.Int32(0), TimeoutMs: 20_000,
				Batch: &sluicev1.RecordBatch{Records: records(1, fmt.Sprintf("b%d", i))}}
			if err := s.Send(&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: uint64(i)}); err != nil {
				return
			}
		}
		_ = s.CloseSend()
	}()
	acked := map[int64]string{}
	last := int64(-1)
	for i := range total {
		if i == 50 {
			var others []uint64
			for id := uint64(1); id <= 3; id++ {
				if id != leader {
					others = append(others, id)
				}
			}
			c.Network.Isolate(leader, others...)
		}
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if r.GetCorrelationId() != uint64(i) {
			t.Fatalf("response %d has correlation id %d", i, r.GetCorrelationId())
		}
		if r.GetError() != nil {
			continue // unknown outcome or not written: either is allowed here
		}
		off := r.GetResponse().GetBaseOffset()
		if off <= last {
			t.Fatalf("batch %d acknowledged at %d after a later-sent batch at %d", i, off, last)
		}
		last = off
		acked[off] = fmt.Sprintf("b%d-v0", i)
	}
	c.Network.HealAll()
	// After the heal the same node takes a new pipelined stream whole,
	// after everything acknowledged before.
	s2, err := n.Producer.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		req := &sluicev1.ProduceRequest{Topic: "move", Partition: proto.Int32(0), TimeoutMs: 30_000,
			Batch: &sluicev1.RecordBatch{Records: records(1, fmt.Sprintf("c%d", i))}}
		if err := s2.Send(&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		r, err := s2.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetError() != nil {
			t.Fatalf("after the heal, batch %d: %v", i, r.GetError())
		}
		off := r.GetResponse().GetBaseOffset()
		if off <= last {
			t.Fatalf("after the heal, batch %d at %d, not after %d", i, off, last)
		}
		last = off
		acked[off] = fmt.Sprintf("c%d-v0", i)
	}
	_ = s2.CloseSend()
	// Read the log from a node that was never cut off.
	reader := c.Nodes[0]
	if leader == 1 {
		reader = c.Nodes[1]
	}
	got := map[int64]string{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, b := range fetchAll(t, reader, "move", 0, 0, 0) {
			got[b.GetBaseOffset()] = string(b.GetRecords()[0].GetValue())
		}
		if _, ok := got[last]; ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for off, v := range acked {
		if got[off] != v {
			t.Fatalf("acknowledged %q at offset %d, the log holds %q", v, off, got[off])
		}
	}
}
