package clients_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newConsumer(t testing.TB, f *fake, opts ...clients.ConsumerOpt) *clients.Consumer {
	t.Helper()
	c, err := clients.NewConsumer(append([]clients.ConsumerOpt{clients.Brokers(f.addrs()...), clients.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pollN polls until n records arrived.
func pollN(t testing.TB, ctx context.Context, c *clients.Consumer, n int) []*clients.Record {
	t.Helper()
	var out []*clients.Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll after %d records: %v", len(out), err)
		}
		out = append(out, recs...)
	}
	if len(out) != n {
		t.Fatalf("%d records, want %d", len(out), n)
	}
	return out
}

func produceN(t testing.TB, p *clients.Producer, topic string, n int) []*clients.Record {
	t.Helper()
	var recs []*clients.Record
	for i := range n {
		recs = append(recs, &clients.Record{
			Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat(fmt.Appendf(nil, "value %d ", i), 10),
			Headers: []clients.Header{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}},
		})
	}
	if err := p.ProduceSync(guard(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestConsumeEveryCodec(t *testing.T) {
	for c := sluicev1.Compression_COMPRESSION_NONE; c <= sluicev1.Compression_COMPRESSION_ZSTD; c++ {
		t.Run(c.String(), func(t *testing.T) {
			f := newFake(t, 2)
			f.addTopic("t", 3, 1, 2)
			p := newProducer(t, f, clients.Compression(c))
			sent := produceN(t, p, "t", 60)
			for part := range 3 {
				for _, b := range f.log("t", part) {
					if b.h.Compression != c {
						t.Fatalf("stored with %v", b.h.Compression)
					}
				}
			}
			cons := newConsumer(t, f)
			ctx := guard(t)
			if err := cons.AssignTopic(ctx, "t", clients.AtStart()); err != nil {
				t.Fatal(err)
			}
			got := pollN(t, ctx, cons, 60)
			byKey := map[string]*clients.Record{}
			for _, r := range got {
				byKey[string(r.Key)] = r
			}
			for _, s := range sent {
				r := byKey[string(s.Key)]
				if r == nil || !bytes.Equal(r.Value, s.Value) || r.Partition != s.Partition || r.Offset != s.Offset ||
					len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, s.Headers[0].Value) ||
					r.Timestamp.UnixMilli() != s.Timestamp.UnixMilli() || r.Topic != "t" {
					t.Fatalf("sent %+v, consumed %+v", s, r)
				}
			}
		})
	}
}

func TestSeekAndStartPositions(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.ManualPartitioning())
	ctx := guard(t)
	produceN(t, p, "t", 10) // one batch, offsets 0..9
	cutoff := time.Now().Add(time.Millisecond)
	for time.Now().Before(cutoff.Add(time.Millisecond)) {
		time.Sleep(time.Millisecond)
	}
	produceN(t, p, "t", 5) // offsets 10..14

	c := newConsumer(t, f, clients.ConsumePartitions(map[string]map[int32]clients.Offset{"t": {0: clients.At(3)}}))
	got := pollN(t, ctx, c, 12)
	if got[0].Offset != 3 || got[11].Offset != 14 {
		t.Fatalf("from At(3): offsets %d..%d", got[0].Offset, got[11].Offset)
	}
	if pos, ok := c.Position("t", 0); !ok || pos != 15 {
		t.Fatalf("position %d %v", pos, ok)
	}
	c.Seek("t", 0, clients.AfterTime(cutoff))
	if got := pollN(t, ctx, c, 5); got[0].Offset != 10 {
		t.Fatalf("AfterTime starts at %d", got[0].Offset)
	}
	c.Seek("t", 0, clients.AtEnd())
	waitPosition(t, ctx, c, "t", 0, 15)
	done := make(chan []*clients.Record)
	go func() {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- recs
	}()
	// The long poll returns once the record arrives, wherever the poll stands.
	produceN(t, p, "t", 1)
	if recs := <-done; len(recs) != 1 || recs[0].Offset != 15 {
		t.Fatalf("after AtEnd: %v", recs)
	}
}

func TestOffsetOutOfRange(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f)
	ctx := guard(t)
	produceN(t, p, "t", 3)

	strict := newConsumer(t, f, clients.StrictOffsets())
	strict.Assign("t", map[int32]clients.Offset{0: clients.At(100)})
	_, err := strict.Poll(ctx)
	var pe *clients.PartitionError
	if !errors.As(err, &pe) || !errors.Is(err, clients.ErrOffsetOutOfRange) || pe.Partition != 0 {
		t.Fatalf("err = %v", err)
	}

	lenient := newConsumer(t, f)
	lenient.Assign("t", map[int32]clients.Offset{0: clients.At(100)})
	// Polls find nothing and move the position to the high watermark.
	waitPosition(t, ctx, lenient, "t", 0, 3)
	produceN(t, p, "t", 1)
	recs := pollN(t, ctx, lenient, 1)
	if recs[0].Offset != 3 {
		t.Fatalf("reset to %d, want the high watermark 3", recs[0].Offset)
	}
}

func TestAdmin(t *testing.T) {
	f := newFake(t, 1)
	a, err := clients.NewAdmin(clients.Brokers(f.addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := guard(t)
	td, err := a.CreateTopic(ctx, clients.TopicSpec{Name: "orders", Partitions: 3})
	if err != nil || len(td.GetPartitions()) != 3 {
		t.Fatalf("CreateTopic = %v, %v", td, err)
	}
	if _, err := a.CreateTopic(ctx, clients.TopicSpec{Name: "orders"}); !errors.Is(err, clients.ErrTopicExists) {
		t.Fatalf("second create: %v", err)
	}
	ts, err := a.ListTopics(ctx, false)
	if err != nil || len(ts) != 1 || ts[0].GetName() != "orders" {
		t.Fatalf("ListTopics = %v, %v", ts, err)
	}
	md, err := a.Metadata(ctx, "orders")
	if err != nil || len(md.GetTopics()) != 1 || len(md.GetNodes()) != 1 {
		t.Fatalf("Metadata = %v, %v", md, err)
	}
	offs, err := a.ListOffsets(ctx, "orders", clients.AtEnd())
	if err != nil || len(offs) != 3 {
		t.Fatalf("ListOffsets = %v, %v", offs, err)
	}
	if err := a.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	_, err = a.DescribeTopic(ctx, "orders")
	if e, ok := clients.AsError(err); !ok || !errors.Is(err, clients.ErrUnknownTopic) || e.Metadata["topic"] != "orders" ||
		clients.ReasonOf(err) != sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC {
		t.Fatalf("describe deleted: %v", err)
	}
}

// waitPosition polls (expecting nothing) until the partition's position is want.
func waitPosition(t testing.TB, ctx context.Context, c *clients.Consumer, topic string, partition int32, want int64) {
	t.Helper()
	for {
		if pos, ok := c.Position(topic, partition); ok && pos == want {
			return
		}
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		recs, err := c.Poll(short)
		cancel()
		if len(recs) != 0 || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
			t.Fatalf("poll: %v, %v", recs, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("position never became %d", want)
		}
	}
}

// The consumer follows a partition whose leader moved.
func TestConsumerFollowsLeader(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 1, 1)
	p := newProducer(t, f)
	ctx := guard(t)
	produceN(t, p, "t", 2)
	c := newConsumer(t, f)
	c.Assign("t", map[int32]clients.Offset{0: clients.AtStart()})
	pollN(t, ctx, c, 2)
	f.setLeader("t", 0, 2)
	produceN(t, p, "t", 3)
	if got := pollN(t, ctx, c, 3); got[0].Offset != 2 {
		t.Fatalf("first offset after the move %d", got[0].Offset)
	}
}

// A node that cannot reach a partition's leader answers ListOffsets and Fetch with
// UNAVAILABLE (no reason) for the partition. Reads are safe to repeat: the consumer
// retries them instead of giving the partition up until the next Seek.
func TestConsumerRetriesUnreachableLeader(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 2)
	p := newProducer(t, f)
	ctx := guard(t)
	produceN(t, p, "t", 4)
	f.mu.Lock()
	f.offsetsUnavailable, f.fetchUnavailable = 2, 2
	f.mu.Unlock()
	c := newConsumer(t, f)
	c.Assign("t", map[int32]clients.Offset{0: clients.AtStart(), 1: clients.AtStart()})
	recs := pollN(t, ctx, c, 4)
	f.mu.Lock()
	left := f.offsetsUnavailable + f.fetchUnavailable
	f.mu.Unlock()
	if left != 0 || len(recs) != 4 {
		t.Fatalf("%d records, %d failures not met", len(recs), left)
	}
}
