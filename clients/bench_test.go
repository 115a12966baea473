package clients_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluicehq/sluice/batch"
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

// BenchmarkProduceSyncRoundTrip measures one synchronous produce of a 1 KiB record:
// "producer" through ProduceSync, "stream" through a bare ProduceStream with the batch
// encoded beforehand. The difference between the two is what the producer adds to a
// round trip. It runs against the in-process fake, or against the real cluster named
// by SLUICE_TEST_BROKERS (acks=all, a topic of one partition made for the run).
func BenchmarkProduceSyncRoundTrip(b *testing.B) {
	value := make([]byte, 1024)
	target := func(b *testing.B) (addrs []string, topic string) {
		if env := os.Getenv("SLUICE_TEST_BROKERS"); env != "" {
			return strings.Split(env, ","), benchTopic(b, strings.Split(env, ","))
		}
		f := newFake(b, 1)
		f.addTopic("t", 1)
		return f.addrs(), "t"
	}
	b.Run("producer", func(b *testing.B) {
		addrs, topic := target(b)
		p, err := clients.NewProducer(clients.Brokers(addrs...), clients.Linger(0))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		ctx := guard(b)
		if err := p.ProduceSync(ctx, &clients.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		recs := make([]clients.Record, 1024)
		lat := make([]time.Duration, 0, 1024)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r := &recs[i%len(recs)]
			i++
			*r = clients.Record{Topic: topic, Value: value}
			t0 := time.Now()
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat)
	})
	b.Run("stream", func(b *testing.B) {
		addrs, topic := target(b)
		ctx := guard(b)
		cc, err := grpc.NewClient(addrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		stream, err := sluicev1.NewProducerServiceClient(cc).ProduceStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rb, err := batch.Encode([]*sluicev1.Record{{Value: value, TimestampMs: time.Now().UnixMilli()}}, sluicev1.Compression_COMPRESSION_NONE)
		if err != nil {
			b.Fatal(err)
		}
		part := int32(0)
		req := &sluicev1.ProduceStreamRequest{Request: &sluicev1.ProduceRequest{Topic: topic, Partition: &part, Acks: sluicev1.Acks_ACKS_ALL, Batch: rb}}
		lat := make([]time.Duration, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			req.CorrelationId++
			t0 := time.Now()
			if err := stream.Send(req); err != nil {
				b.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || resp.GetError() != nil {
				b.Fatal(err, resp.GetError())
			}
			lat = append(lat, time.Since(t0))
		}
		stream.CloseSend() //nolint:errcheck // ends the stream
		reportLatency(b, lat)
	})
}

// benchTopic creates a topic of one partition on a real cluster for the benchmark.
func benchTopic(b *testing.B, brokers []string) string {
	ctx := guard(b)
	admin, err := clients.NewAdmin(clients.Brokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	topic := fmt.Sprintf("bench-%08x", rand.Uint32())
	if _, err := admin.CreateTopic(ctx, clients.TopicSpec{Name: topic, Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		admin.DeleteTopic(context.Background(), topic) //nolint:errcheck // best effort
		admin.Close()
	})
	return topic
}

// reportLatency adds the median and 99th percentile of lat to the results, in µs.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
