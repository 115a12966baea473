package clients_test

import (
	"bytes"
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
