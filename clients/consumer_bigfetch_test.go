package clients_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/clients"
)

// With default options a fetch may bring up to FetchMaxBytes (16 MiB), far
// above grpc's default 4 MiB limit on a received message: the consumer
// must accept what it asked for.
func TestFetchLargerThanGRPCDefault(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 6)
	p := newProducer(t, f, clients.ManualPartitioning())
	value := bytes.Repeat([]byte{'v'}, 100<<10)
	for part := range int32(6) {
		var recs []*clients.Record
		for range 9 { // ~900 KiB per partition, ~5.4 MiB per fetch
			recs = append(recs, &clients.Record{Topic: "t", Partition: part, Value: value})
		}
		if err := p.ProduceSync(guard(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := clients.NewConsumer(clients.Brokers(f.addrs()...),
		clients.ConsumePartitions(map[string]map[int32]clients.Offset{"t": {0: clients.AtStart(), 1: clients.AtStart(),
			2: clients.AtStart(), 3: clients.AtStart(), 4: clients.AtStart(), 5: clients.AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pollN(t, guard(t), c, 54)
}

// With ReuseRecordMemory the records of each Poll are intact until the next Poll, over
// many Polls whose frames are read into again.
func TestReuseRecordMemoryKeepsEachPollIntact(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 2, 1, 2)
	p := newProducer(t, f, clients.ManualPartitioning(), clients.MaxBatchBytes(64<<10))
	ctx := guard(t)
	const n = 3000
	value := func(part int32, i int) []byte {
		return bytes.Repeat(fmt.Appendf(nil, "%d-%d.", part, i), 400)[:1500]
	}
	for part := range int32(2) {
		var recs []*clients.Record
		for i := range n {
			recs = append(recs, &clients.Record{Topic: "t", Partition: part, Key: fmt.Appendf(nil, "%d", i), Value: value(part, i),
				Headers: []clients.Header{{Key: "h", Value: value(part, i)[:20]}}})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c := newConsumer(t, f, clients.ReuseRecordMemory(), clients.FetchMaxBytes(256<<10), clients.FetchMaxPartitionBytes(128<<10),
		clients.ConsumePartitions(map[string]map[int32]clients.Offset{"t": {0: clients.AtStart(), 1: clients.AtStart()}}))
	seen := [2]int{}
	for polls := 0; seen[0]+seen[1] < 2*n; polls++ {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll %d: %v", polls, err)
		}
		for _, r := range recs {
			i := int(r.Offset)
			if r.Offset != int64(seen[r.Partition]) || !bytes.Equal(r.Value, value(r.Partition, i)) ||
				string(r.Key) != fmt.Sprint(i) || len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, value(r.Partition, i)[:20]) {
				t.Fatalf("poll %d: %d/%d read as key %q value %.30q", polls, r.Partition, r.Offset, r.Key, r.Value)
			}
			seen[r.Partition]++
		}
	}
}
