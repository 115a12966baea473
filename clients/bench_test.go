package clients_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
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

// BenchmarkProducerServer measures the same against a real server named by
// SLUICE_TEST_BROKERS: acks=all, 1 KiB values, one partition per run.
func BenchmarkProducerServer(b *testing.B) {
	env := os.Getenv("SLUICE_TEST_BROKERS")
	if env == "" {
		b.Skip("SLUICE_TEST_BROKERS not set")
	}
	brokers := strings.Split(env, ",")
	ctx := guard(b)
	admin, err := clients.NewAdmin(clients.Brokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	topic := fmt.Sprintf("bench-%08x", rand.Uint32())
	if _, err := admin.CreateTopic(ctx, clients.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	defer admin.DeleteTopic(ctx, topic) //nolint:errcheck // best effort
	p, err := clients.NewProducer(clients.Brokers(brokers...), clients.Linger(time.Millisecond), clients.ManualPartitioning())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	value := make([]byte, 1024)
	var failed atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	start := time.Now()
	for b.Loop() {
		p.Produce(ctx, &clients.Record{Topic: topic, Value: value}, func(_ *clients.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d records failed", n)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
