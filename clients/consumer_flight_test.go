package clients_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// A fetch outlives the Poll that started it: a Poll that ends with its ctx
// leaves the fetch in flight, and the records it brings come back from the
// next Poll, once each, in order, alongside another leader's.
func TestFetchOutlivesPoll(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 2, 1, 2)
	p := newProducer(t, f, clients.ManualPartitioning())
	var canceled atomic.Int64 // fetches cut short by the client
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if method == sluicev1.ConsumerService_Fetch_FullMethodName && status.Code(err) == codes.Canceled {
			canceled.Add(1)
		}
		return err
	}
	c := newConsumer(t, f, clients.FetchMaxWait(5*time.Second), clients.DialOptions(grpc.WithChainUnaryInterceptor(count)),
		clients.ConsumePartitions(map[string]map[int32]clients.Offset{"t": {0: clients.At(0), 1: clients.At(0)}}))
	next := map[int32]int64{}
	for round := range int32(6) {
		short, cancel := context.WithTimeout(guard(t), 20*time.Millisecond)
		recs, err := c.Poll(short) // nothing new: the long polls stay in flight
		cancel()
		if len(recs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: idle Poll: %d records, %v", round, len(recs), err)
		}
		// Records of one leader end its fetch, not the other's.
		parts := []int32{round % 2}
		if round >= 3 {
			parts = []int32{0, 1}
		}
		for _, part := range parts {
			if err := p.ProduceSync(guard(t), &clients.Record{Topic: "t", Partition: part, Value: []byte{byte(round)}}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		got := map[int32][]int64{}
		for n := 0; n < len(parts); {
			recs, err := c.Poll(guard(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				got[r.Partition] = append(got[r.Partition], r.Offset)
				n++
			}
		}
		for _, part := range parts {
			if want := next[part]; len(got[part]) != 1 || got[part][0] != want {
				t.Fatalf("round %d partition %d: offsets %v, want [%d]", round, part, got[part], want)
			}
			next[part]++
		}
	}
	if n := canceled.Load(); n != 0 {
		t.Fatalf("%d fetches canceled before Close", n)
	}
}

// A Seek while a fetch of the partition is in flight takes effect at the
// next Poll: it fetches from the new position instead of waiting for the
// old fetch, whose answer is dropped.
func TestSeekDuringFetchInFlight(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.ManualPartitioning())
	produceN(t, p, "t", 10)
	c := newConsumer(t, f, clients.FetchMaxWait(time.Minute),
		clients.ConsumePartitions(map[string]map[int32]clients.Offset{"t": {0: clients.At(0)}}))
	pollN(t, guard(t), c, 10)
	short, cancel := context.WithTimeout(guard(t), 20*time.Millisecond)
	if recs, err := c.Poll(short); len(recs) != 0 || err == nil { // leaves a long poll at 10
		t.Fatalf("idle Poll: %d records, %v", len(recs), err)
	}
	cancel()
	c.Seek("t", 0, clients.At(4))
	recs, err := c.Poll(guard(t)) // with a minute of fetch wait, only a new fetch answers
	if err != nil || len(recs) != 6 || recs[0].Offset != 4 {
		t.Fatalf("after Seek: %d records, %v", len(recs), err)
	}
}

// Close ends the fetches in flight and waits for them (TestMain checks for
// leaked goroutines); a Poll after Close fails with ErrClosed.
func TestCloseEndsFetchesInFlight(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	c := newConsumer(t, f, clients.FetchMaxWait(time.Minute),
		clients.ConsumePartitions(map[string]map[int32]clients.Offset{"t": {0: clients.At(0)}}))
	short, cancel := context.WithTimeout(guard(t), 20*time.Millisecond)
	c.Poll(short) //nolint:errcheck // leaves a long poll in flight
	cancel()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(guard(t)); !errors.Is(err, clients.ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
}

// Once a fetch lands with records, the consumer fetches what follows them before the
// application polls again, and the next Poll takes those records in order; after a Seek
// the fetched-ahead answer is dropped and the records come from the new position.
func TestConsumerFetchesAhead(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.ManualPartitioning())
	froms := make(chan int64, 64) // offsets the fetches ask for, as they are sent
	watch := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if fr, ok := req.(*sluicev1.FetchRequest); ok {
			for _, fp := range fr.GetPartitions() {
				froms <- fp.GetOffset()
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c := newConsumer(t, f, clients.FetchMaxWait(5*time.Second), clients.DialOptions(grpc.WithChainUnaryInterceptor(watch)),
		clients.ConsumePartitions(map[string]map[int32]clients.Offset{"t": {0: clients.At(0)}}))
	produce := func(v byte) {
		if err := p.ProduceSync(guard(t), &clients.Record{Topic: "t", Value: []byte{v}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	poll := func() []int64 {
		recs, err := c.Poll(guard(t))
		if err != nil {
			t.Fatal(err)
		}
		var offs []int64
		for _, r := range recs {
			offs = append(offs, r.Offset)
		}
		return offs
	}
	produce(0)
	produce(1)
	if got := poll(); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("first Poll: offsets %v, want [0 1]", got)
	}
	// No Poll runs now; the fetch ahead from offset 2 is sent anyway.
	waitFetch(t, froms, 2)
	produce(2)
	if got := poll(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("second Poll: offsets %v, want [2]", got)
	}
	// The answer to the fetch ahead from 3 is dropped after a Seek back to 1.
	produce(3)
	waitFetch(t, froms, 3)
	c.Seek("t", 0, clients.At(1))
	var got []int64
	for len(got) < 3 {
		got = append(got, poll()...)
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("after Seek(1): offsets %v, want [1 2 3]", got)
	}
}

// waitFetch waits until a fetch from offset want is sent; it fails on a fetch from a
// larger offset, or when none comes.
func waitFetch(t *testing.T, froms <-chan int64, want int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case from := <-froms:
			if from == want {
				return
			}
			if from > want {
				t.Fatalf("a fetch from %d, before one from %d", from, want)
			}
		case <-deadline:
			t.Fatalf("no fetch from %d was sent", want)
		}
	}
}
