package server_test

import (
	"bytes"
	"fmt"
	"testing"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// bigRecords returns n records whose values (tag-i, 20 KiB each) tell them apart.
func bigRecords(n int, tag string) []*sluicev1.Record {
	out := make([]*sluicev1.Record, n)
	for i := range out {
		v := bytes.Repeat([]byte(fmt.Sprintf("%s-%d;", tag, i)), 4096)[:20<<10]
		out[i] = &sluicev1.Record{Key: []byte(fmt.Sprintf("%s-%d", tag, i)), Value: v}
	}
	return out
}

// Fetch and Consume read into reused buffers: every record comes back
// byte for byte, from every partition of one response and across the reads
// of one stream, never one partition's or one read's bytes for another's.
func TestReadPathReturnsIdenticalBytes(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "rp", 3, nil)
	want := map[int32][]*sluicev1.Record{}
	for p := range int32(3) {
		for b := range 6 {
			recs := bigRecords(4, fmt.Sprintf("p%d-b%d", p, b))
			produce(t, n, "rp", p, recs)
			want[p] = append(want[p], recs...)
		}
	}
	// One Fetch of all three partitions, several times (buffers come back
	// from the pool holding the previous response's bytes).
	for round := range 3 {
		resp, err := n.Consumer.Fetch(ctxT(t), &sluicev1.FetchRequest{Topic: "rp", PartitionMaxBytes: 1 << 20,
			Partitions: []*sluicev1.FetchPosition{{Partition: 0}, {Partition: 1}, {Partition: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, fp := range resp.GetPartitions() {
			var got []*sluicev1.Record
			for _, rb := range fp.GetBatches() {
				got = append(got, rb.GetRecords()...)
			}
			if fp.GetError() != nil || len(got) != len(want[fp.GetPartition()]) {
				t.Fatalf("round %d partition %d: %d records, %v", round, fp.GetPartition(), len(got), fp.GetError())
			}
			sameRecords(t, got, want[fp.GetPartition()])
		}
	}
	// A Consume stream with credit for about two batches at a time reads
	// each partition in many reads of one reused buffer.
	c := openConsume(t, n, n.Consumer)
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{
		Topic: "rp", Start: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Earliest{Earliest: true}}}}})
	got := map[int32][]*sluicev1.Record{}
	for total := 0; total < 3*24; {
		c.credit(170 << 10)
		for _, m := range c.barrier() {
			b := m.GetBatch()
			if b == nil {
				t.Fatalf("unexpected message %v", m)
			}
			got[b.GetPartition()] = append(got[b.GetPartition()], b.GetBatch().GetRecords()...)
			total += len(b.GetBatch().GetRecords())
		}
	}
	for p := range int32(3) {
		sameRecords(t, got[p], want[p])
	}
}
