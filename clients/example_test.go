package clients_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// exampleCluster returns brokers for the examples: a real cluster named by
// SLUICE_TEST_BROKERS (comma-separated) when set, otherwise an in-process fake. Topics
// get a random suffix on a real cluster so runs do not collide.
func exampleCluster() (brokers []string, topic func(string) string, stop func()) {
	if env := os.Getenv("SLUICE_TEST_BROKERS"); env != "" {
		suffix := fmt.Sprintf("-%08x", rand.Uint32())
		return strings.Split(env, ","), func(s string) string { return s + suffix }, func() {}
	}
	f := startFake(1)
	return f.addrs(), func(s string) string { return s }, f.stop
}

func Example() {
	brokers, topic, stop := exampleCluster()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	orders := topic("orders")

	admin, err := clients.NewAdmin(clients.Brokers(brokers...))
	if err != nil {
		panic(err)
	}
	defer admin.Close()
	if _, err := admin.CreateTopic(ctx, clients.TopicSpec{Name: orders, Partitions: 3}); err != nil {
		panic(err)
	}

	producer, err := clients.NewProducer(clients.Brokers(brokers...),
		clients.Compression(sluicev1.Compression_COMPRESSION_ZSTD), clients.Linger(10*time.Millisecond))
	if err != nil {
		panic(err)
	}
	defer producer.Close()
	for i := range 3 {
		producer.Produce(ctx, &clients.Record{Topic: orders, Key: []byte("customer-42"), Value: fmt.Appendf(nil, "order %d", i)},
			func(r *clients.Record, err error) {
				if err != nil {
					fmt.Println("produce failed:", err)
				}
			})
	}
	if err := producer.Flush(ctx); err != nil {
		panic(err)
	}

	consumer, err := clients.NewConsumer(clients.Brokers(brokers...))
	if err != nil {
		panic(err)
	}
	defer consumer.Close()
	if err := consumer.AssignTopic(ctx, orders, clients.AtStart()); err != nil {
		panic(err)
	}
	for n := 0; n < 3; {
		recs, err := consumer.Poll(ctx)
		if err != nil {
			panic(err)
		}
		for _, r := range recs {
			fmt.Printf("%s: %s (offset %d)\n", r.Key, r.Value, r.Offset)
			n++
		}
	}
	// Output:
	// customer-42: order 0 (offset 0)
	// customer-42: order 1 (offset 1)
	// customer-42: order 2 (offset 2)
}

func ExampleProducer_ProduceSync() {
	brokers, topic, stop := exampleCluster()
	defer stop()
	ctx := context.Background()
	events := topic("events")
	admin, _ := clients.NewAdmin(clients.Brokers(brokers...))
	defer admin.Close()
	if _, err := admin.CreateTopic(ctx, clients.TopicSpec{Name: events, Partitions: 1}); err != nil {
		panic(err)
	}

	p, err := clients.NewProducer(clients.Brokers(brokers...))
	if err != nil {
		panic(err)
	}
	defer p.Close()
	results := p.ProduceSync(ctx,
		&clients.Record{Topic: events, Value: []byte("signed up")},
		&clients.Record{Topic: events, Value: []byte("logged in"), Headers: []clients.Header{{Key: "source", Value: []byte("web")}}},
	)
	if err := results.FirstErr(); err != nil {
		panic(err)
	}
	for _, r := range results {
		fmt.Printf("%s -> partition %d offset %d\n", r.Record.Value, r.Record.Partition, r.Record.Offset)
	}
	// Output:
	// signed up -> partition 0 offset 0
	// logged in -> partition 0 offset 1
}

func ExampleError() {
	brokers, topic, stop := exampleCluster()
	defer stop()
	admin, _ := clients.NewAdmin(clients.Brokers(brokers...))
	defer admin.Close()
	_, err := admin.DescribeTopic(context.Background(), topic("no-such-topic"))
	if e, ok := clients.AsError(err); ok {
		fmt.Println(e.Code, strings.TrimPrefix(e.Reason.String(), "ERROR_REASON_"), errorsIs(err))
	}
	// Output:
	// NotFound UNKNOWN_TOPIC true
}

func errorsIs(err error) bool {
	return clients.ReasonOf(err) == sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC
}

func ExampleConsumer_Seek() {
	brokers, topic, stop := exampleCluster()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := topic("logs")
	admin, _ := clients.NewAdmin(clients.Brokers(brokers...))
	defer admin.Close()
	if _, err := admin.CreateTopic(ctx, clients.TopicSpec{Name: logs, Partitions: 1}); err != nil {
		panic(err)
	}
	p, _ := clients.NewProducer(clients.Brokers(brokers...))
	defer p.Close()
	var recs []*clients.Record
	for i := range 5 {
		recs = append(recs, &clients.Record{Topic: logs, Value: fmt.Appendf(nil, "line %d", i)})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		panic(err)
	}

	c, _ := clients.NewConsumer(clients.Brokers(brokers...))
	defer c.Close()
	c.Seek(logs, 0, clients.At(3))
	for n := 0; n < 2; {
		rs, err := c.Poll(ctx)
		if err != nil {
			panic(err)
		}
		for _, r := range rs {
			fmt.Println(r.Offset, string(r.Value))
			n++
		}
	}
	// Output:
	// 3 line 3
	// 4 line 4
}
