package server_test

import (
	"fmt"
	"io"
	"testing"

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
