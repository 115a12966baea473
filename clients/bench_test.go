package clients_test

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// BenchmarkProducer measures asynchronous produce throughput against the in-process
// fake (which validates and stores every batch with package batch, as the server
// does): 100-byte values, 4 partitions.
func BenchmarkProducer(b *testing.B) {
	for _, c := range []sluicev1.Compression{sluicev1.Compression_COMPRESSION_NONE, sluicev1.Compression_COMPRESSION_LZ4} {
		b.Run(c.String(), func(b *testing.B) {
			f := newFake(b, 1)
			f.addTopic("t", 4)
			p := newProducer(b, f, clients.Compression(c), clients.Linger(time.Millisecond))
			ctx := guard(b)
			value := make([]byte, 100)
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			start := time.Now()
			for b.Loop() {
				p.Produce(ctx, &clients.Record{Topic: "t", Value: value}, nil)
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
