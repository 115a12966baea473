package clients_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds a test's waits; it is a failure guard, not a timing assertion.
func guard(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newProducer(t testing.TB, f *fake, opts ...clients.ProducerOpt) *clients.Producer {
	t.Helper()
	p, err := clients.NewProducer(append([]clients.ProducerOpt{clients.Brokers(f.addrs()...),
		clients.RetryBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProduceSyncAcknowledgesWithOffsets(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f)
	ctx := guard(t)
	var recs []*clients.Record
	for i := range 10 {
		recs = append(recs, &clients.Record{Topic: "t", Value: fmt.Appendf(nil, "v%d", i)})
	}
	rs := p.ProduceSync(ctx, recs...)
	if err := rs.FirstErr(); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Record.Offset != int64(i) || r.Record.Partition != 0 {
			t.Fatalf("record %d at %d/%d", i, r.Record.Partition, r.Record.Offset)
		}
	}
	if r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("x")}).First(); err != nil || r.Offset != 10 {
		t.Fatalf("First = %v, %v", r, err)
	}
}

// Records wait for linger and are sent together by Flush; no timing is asserted: the
// linger is an hour.
func TestLingerBatchesUntilFlush(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.Linger(time.Hour), clients.ManualPartitioning())
	ctx := guard(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var offsets []int64
	for i := range 50 {
		wg.Add(1)
		p.Produce(ctx, &clients.Record{Topic: "t", Value: fmt.Appendf(nil, "%d", i)}, func(r *clients.Record, err error) {
			defer wg.Done()
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			offsets = append(offsets, r.Offset)
			mu.Unlock()
		})
	}
	if n := len(f.log("t", 0)); n != 0 {
		t.Fatalf("%d batches sent before linger or flush", n)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	log := f.log("t", 0)
	if len(log) != 1 || log[0].h.RecordCount != 50 {
		t.Fatalf("want one batch of 50, got %d batches", len(log))
	}
	for i, o := range offsets { // promises run in order per partition
		if o != int64(i) {
			t.Fatalf("promise %d got offset %d", i, o)
		}
	}
}

func TestMaxBatchBytesSplitsBatches(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.Linger(time.Hour), clients.MaxBatchBytes(1000), clients.ManualPartitioning())
	ctx := guard(t)
	for range 100 {
		p.Produce(ctx, &clients.Record{Topic: "t", Value: make([]byte, 95)}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	log := f.log("t", 0)
	total := 0
	for _, b := range log {
		total += int(b.h.RecordCount)
		if b.h.RecordCount > 10 {
			t.Fatalf("batch of %d records over 1000 bytes", b.h.RecordCount)
		}
	}
	if total != 100 || len(log) < 10 {
		t.Fatalf("%d records in %d batches", total, len(log))
	}
}

func TestKeyedRecordsGoWhereKafkaPutsThem(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 7, 1, 2)
	p := newProducer(t, f)
	ctx := guard(t)
	var recs []*clients.Record
	for i := range 200 {
		recs = append(recs, &clients.Record{Topic: "t", Key: fmt.Appendf(nil, "key-%d", i), Value: []byte("v")})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if want := batch.KeyPartition(r.Key, 7); r.Partition != want {
			t.Fatalf("key %s in partition %d, want %d", r.Key, r.Partition, want)
		}
	}
	// And the fake has each record where the promise said.
	for part := range 7 {
		for _, b := range f.log("t", part) {
			rb, _ := batch.Splice(b.stored, b.base, 0, sluicev1.RecordFormat_RECORD_FORMAT_STORED)
			rs, err := batch.Records(rb)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if batch.KeyPartition(r.Key, 7) != int32(part) {
					t.Fatalf("key %s stored in partition %d", r.Key, part)
				}
			}
		}
	}
}

// Records without a key stick to one partition until its batch is sent (with no byte
// floor).
func TestStickyPartitioningForNullKeys(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 8)
	p := newProducer(t, f, clients.Linger(time.Hour), clients.StickyPartitionBytes(0))
	ctx := guard(t)
	for range 30 {
		p.Produce(ctx, &clients.Record{Topic: "t", Value: []byte("v")}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	used := 0
	for part := range 8 {
		if log := f.log("t", part); len(log) > 0 {
			used++
			if len(log) != 1 || log[0].h.RecordCount != 30 {
				t.Fatalf("partition %d: %d batches", part, len(log))
			}
		}
	}
	if used != 1 {
		t.Fatalf("null keys spread over %d partitions", used)
	}
	// After the batch is sent, the next null-key batch may go elsewhere: over many
	// flushed batches more than one partition is used.
	seen := map[int32]bool{}
	for range 40 {
		r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("v")}).First()
		if err != nil {
			t.Fatal(err)
		}
		seen[r.Partition] = true
	}
	if len(seen) < 2 {
		t.Fatalf("sticky partition never moved: %v", seen)
	}
}

// With Linger 0 every ProduceSync is its own batch; records without a key still stay
// on one partition until StickyPartitionBytes went to it, then move to another.
func TestStickyPartitionBytesFloor(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 8)
	p := newProducer(t, f, clients.Linger(0)) // default floor: 16 KiB
	ctx := guard(t)
	value := make([]byte, 1000) // 16 or 17 records reach 16 KiB, with framing
	var runs []int
	last := int32(-1)
	for range 120 {
		r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: value}).First()
		if err != nil {
			t.Fatal(err)
		}
		if r.Partition != last {
			runs = append(runs, 0)
			last = r.Partition
		}
		runs[len(runs)-1]++
	}
	if len(runs) < 3 {
		t.Fatalf("runs %v: the sticky partition should move after 16 KiB", runs)
	}
	for _, n := range runs[:len(runs)-1] {
		if n != runs[0] || n < 16 || n > 17 {
			t.Fatalf("runs of records per partition %v, want 16 or 17 each", runs)
		}
	}
}

// Records without a key move to a partition with nothing outstanding: ones still
// waiting for an answer (here, forever) are not picked while another is idle. Before,
// the next partition was random, and records landing on a partition with a request out
// waited for its answer.
func TestStickyPartitionPrefersIdlePartitions(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 4, 1, 1, 1, 2) // node 1 leads partitions 0-2 and holds its answers
	p := newProducer(t, f, clients.Linger(0), clients.StickyPartitionBytes(0))
	ctx := guard(t)
	release := f.holdAnswers(t, 1)
	count := map[int32]int{}
	var wg sync.WaitGroup
	for range 60 {
		acked := make(chan error, 1)
		wg.Add(1)
		p.Produce(ctx, &clients.Record{Topic: "t", Value: []byte("v")}, func(_ *clients.Record, err error) {
			acked <- err
			wg.Done()
		})
		part := clients.StickyPartition(p, "t") // where the record went: only this loop produces
		count[part]++
		if part == 3 { // node 2 answers
			if err := <-acked; err != nil {
				t.Fatal(err)
			}
			continue
		}
		if count[part] > 1 {
			t.Fatalf("records per partition %v: partition %d was picked with a request outstanding", count, part)
		}
		if !f.waitBatches(ctx, "t", int(part), 1) { // in flight: its answer is held
			t.Fatal("the first request of a partition of node 1 never arrived")
		}
	}
	release()
	wg.Wait()
}

// With many partitions the next sticky partition is chosen from a sample: records
// still spread over the topic, and every choice is a partition of it.
func TestStickyPartitioningSpreadsOverManyPartitions(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 64)
	p := newProducer(t, f, clients.Linger(0), clients.StickyPartitionBytes(0))
	ctx := guard(t)
	seen := map[int32]bool{}
	for range 200 {
		r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("v")}).First()
		if err != nil {
			t.Fatal(err)
		}
		if r.Partition < 0 || r.Partition >= 64 {
			t.Fatalf("partition %d of 64", r.Partition)
		}
		seen[r.Partition] = true
	}
	if len(seen) < 32 {
		t.Fatalf("200 records moving after every batch used %d of 64 partitions", len(seen))
	}
}

// A batch with room waits for the partition's request in flight, so records produced
// during a round trip share the next request. But once that request has been out for
// twice the partition's usual round trip, the batch goes behind it: its records are
// replicated meanwhile instead of waiting for the slow answer and then a round trip of
// their own.
func TestBatchGoesBehindASlowRequest(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.Linger(0))
	ctx := guard(t)
	const warm = 5 // answered round trips: the partition's usual one
	for range warm {
		if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("w")}).First(); err != nil {
			t.Fatal(err)
		}
	}
	release := f.holdAnswers(t, 1)
	var wg sync.WaitGroup
	produce := func(v string) {
		wg.Add(1)
		p.Produce(ctx, &clients.Record{Topic: "t", Value: []byte(v)}, func(_ *clients.Record, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	produce("a") // sent at once; its answer is held
	if !f.waitBatches(ctx, "t", 0, warm+1) {
		t.Fatal("a was not sent")
	}
	produce("b") // has room: waits behind a until a's round trip is slow
	if !f.waitBatches(ctx, "t", 0, warm+2) {
		t.Fatal("b never went while a's answer was outstanding")
	}
	release()
	wg.Wait()
	log := f.log("t", 0)
	if len(log) != warm+2 || log[warm].h.RecordCount != 1 || log[warm+1].h.RecordCount != 1 {
		t.Fatalf("%d batches, want a and b in one each after %d", len(log), warm)
	}
}

// The leader moves after the producer cached metadata: the old leader answers
// NOT_LEADER with the new leader's address and the batch is retried there.
func TestRetryOnNotLeaderFollowsTheHint(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 1, 1)
	p := newProducer(t, f)
	ctx := guard(t)
	if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("a")}).First(); err != nil {
		t.Fatal(err)
	}
	f.setLeader("t", 0, 2)
	r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("b")}).First()
	if err != nil {
		t.Fatal(err)
	}
	log := f.log("t", 0)
	if r.Offset != 1 || len(log) != 2 || log[1].node != 2 {
		t.Fatalf("offset %d, %d batches, last on node %d", r.Offset, len(log), log[len(log)-1].node)
	}
}

// Without a usable hint the producer refreshes metadata to find the leader.
func TestRetryRefreshesMetadata(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 1, 1)
	p := newProducer(t, f)
	ctx := guard(t)
	if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("a")}).First(); err != nil {
		t.Fatal(err)
	}
	f.setLeader("t", 0, 2)
	f.mu.Lock()
	before := f.metaCalls
	f.produceHook = func(node int32, req *sluicev1.ProduceRequest) error {
		if node == 1 {
			return apiError(codes.Unavailable, "LEADER_NOT_AVAILABLE", nil)
		}
		return nil
	}
	f.mu.Unlock()
	if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("b")}).First(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	after := f.metaCalls
	f.mu.Unlock()
	if after <= before {
		t.Fatalf("no metadata refresh")
	}
	if log := f.log("t", 0); log[len(log)-1].node != 2 {
		t.Fatalf("batch written on node %d", log[len(log)-1].node)
	}
}

// Batches carry the producer id and consecutive sequences; a batch whose
// acknowledgement was lost is retried and the partition deduplicates it.
func TestIdempotentSequencesAndDedupe(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.ManualPartitioning())
	ctx := guard(t)
	for i := range 5 {
		var recs []*clients.Record
		for range i + 1 {
			recs = append(recs, &clients.Record{Topic: "t", Value: []byte("v")})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var lost sync.Once
	f.mu.Lock()
	f.appendThenFail = true
	f.produceHook = func(int32, *sluicev1.ProduceRequest) error {
		var err error
		lost.Do(func() { err = apiError(codes.DeadlineExceeded, "UNKNOWN_OUTCOME", nil) })
		return err
	}
	f.mu.Unlock()
	r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("last")}).First()
	if err != nil {
		t.Fatal(err)
	}
	log := f.log("t", 0)
	if len(log) != 6 {
		t.Fatalf("%d batches, want 6 (the retry deduplicated)", len(log))
	}
	want := int32(0)
	for i, b := range log {
		if b.h.ProducerID <= 0 || b.h.BaseSequence != want {
			t.Fatalf("batch %d: producer %d sequence %d, want %d", i, b.h.ProducerID, b.h.BaseSequence, want)
		}
		want += b.h.RecordCount
	}
	if r.Offset != 15 {
		t.Fatalf("deduplicated record at offset %d, want 15", r.Offset)
	}
}

// Without idempotence an unknown outcome is not retried: it could write twice.
func TestNonIdempotentUnknownOutcomeFails(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	f.produceHook = func(int32, *sluicev1.ProduceRequest) error {
		return apiError(codes.DeadlineExceeded, "UNKNOWN_OUTCOME", nil)
	}
	p := newProducer(t, f, clients.DisableIdempotence())
	_, err := p.ProduceSync(guard(t), &clients.Record{Topic: "t", Value: []byte("v")}).First()
	if !errors.Is(err, clients.ErrUnknownOutcome) {
		t.Fatalf("err = %v", err)
	}
	for _, b := range f.log("t", 0) {
		if b.h.ProducerID > 0 {
			t.Fatalf("batch carries producer id %d", b.h.ProducerID)
		}
	}
}

func TestNonRetriableErrorReachesThePromise(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	f.produceHook = func(int32, *sluicev1.ProduceRequest) error {
		return apiError(codes.InvalidArgument, "BATCH_TOO_LARGE", map[string]string{"size": "2000000", "max": "1048588"})
	}
	p := newProducer(t, f)
	_, err := p.ProduceSync(guard(t), &clients.Record{Topic: "t", Value: []byte("v")}).First()
	e, ok := clients.AsError(err)
	if !ok || !errors.Is(err, clients.ErrBatchTooLarge) || e.Code != codes.InvalidArgument || e.Metadata["max"] != "1048588" {
		t.Fatalf("err = %#v", err)
	}
	if clients.IsRetriable(err) {
		t.Fatalf("BATCH_TOO_LARGE retriable")
	}
	// The refused batch left no gap: the next one is accepted (sequence adjusted).
	f.mu.Lock()
	f.produceHook = nil
	f.mu.Unlock()
	if _, err := p.ProduceSync(guard(t), &clients.Record{Topic: "t", Value: []byte("v")}).First(); err != nil {
		t.Fatalf("after a refused batch: %v", err)
	}
}

func TestUnknownTopic(t *testing.T) {
	f := newFake(t, 1)
	p := newProducer(t, f)
	_, err := p.ProduceSync(guard(t), &clients.Record{Topic: "nope", Value: []byte("v")}).First()
	if !errors.Is(err, clients.ErrUnknownTopic) {
		t.Fatalf("err = %v", err)
	}
}

// A server without ProduceStream and InitProducer still takes records: the producer
// falls back to unary calls without idempotence.
func TestFallbackToUnaryWithoutIdempotence(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 2)
	f.noStream, f.noInit = true, true
	p := newProducer(t, f)
	var recs []*clients.Record
	for i := range 20 {
		recs = append(recs, &clients.Record{Topic: "t", Key: fmt.Appendf(nil, "%d", i), Value: []byte("v")})
	}
	if err := p.ProduceSync(guard(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for part := range 2 {
		for _, b := range f.log("t", part) {
			n += int(b.h.RecordCount)
			if b.h.ProducerID > 0 {
				t.Fatalf("idempotent batch without InitProducer")
			}
		}
	}
	if n != 20 {
		t.Fatalf("%d records stored", n)
	}
}

func TestCloseFailsBufferedRecords(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.Linger(time.Hour))
	errc := make(chan error, 1)
	p.Produce(guard(t), &clients.Record{Topic: "t", Value: []byte("v")}, func(_ *clients.Record, err error) { errc <- err })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, clients.ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	var got error
	p.Produce(guard(t), &clients.Record{Topic: "t"}, func(_ *clients.Record, err error) { got = err })
	if !errors.Is(got, clients.ErrClosed) {
		t.Fatalf("produce after close: %v", got)
	}
}

func TestInvalidRecordFailsAlone(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.ManualPartitioning())
	rs := p.ProduceSync(guard(t),
		&clients.Record{Topic: "t", Value: []byte("bad"), Headers: []clients.Header{{Key: "\xff", Value: nil}}},
		&clients.Record{Topic: "t", Value: []byte("good")},
		&clients.Record{Value: []byte("no topic")},
	)
	if rs[0].Err == nil || rs[1].Err != nil || !errors.Is(rs[2].Err, clients.ErrInvalidRequest) {
		t.Fatalf("results %v", rs)
	}
	if log := f.log("t", 0); len(log) != 1 || log[0].h.RecordCount != 1 {
		t.Fatalf("stored %d batches", len(log))
	}
}

// Partitions added to a topic are used once the metadata is older than MetadataMaxAge.
func TestMetadataMaxAgePicksUpNewPartitions(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.MetadataMaxAge(time.Nanosecond))
	ctx := guard(t)
	if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("v")}).First(); err != nil {
		t.Fatal(err)
	}
	key := []byte("k0")
	for i := 1; batch.KeyPartition(key, 5) == 0; i++ {
		key = fmt.Appendf(nil, "k%d", i)
	}
	f.addTopic("t", 5) // the fake recreates it with 5 partitions
	r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Key: key, Value: []byte("v")}).First()
	if err != nil {
		t.Fatal(err)
	}
	if want := batch.KeyPartition(key, 5); r.Partition != want {
		t.Fatalf("partition %d, want %d of 5", r.Partition, want)
	}
}

// Synchronous produces sent from their callers' goroutines and asynchronous ones sent by
// the sink share a stream: each producer's records still land in the order produced,
// one batch per send, and a ProduceSync of more records than may be buffered finishes.
// Without idempotence, so that no sequence check on the server repairs the order.
func TestProduceSyncFromCallersKeepsOrder(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 2)
	p := newProducer(t, f, clients.Linger(0), clients.MaxBufferedRecords(8), clients.ManualPartitioning(), clients.DisableIdempotence())
	ctx := guard(t)
	const n = 200
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				r := &clients.Record{Topic: "t", Partition: int32(g % 2), Key: []byte{byte(g)}, Value: fmt.Appendf(nil, "%d", i)}
				if g == 3 {
					p.Produce(ctx, r, nil)
					continue
				}
				if _, err := p.ProduceSync(ctx, r).First(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var many []*clients.Record
	for i := range 20 {
		many = append(many, &clients.Record{Topic: "t", Partition: 1, Key: []byte{9}, Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := p.ProduceSync(ctx, many...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	next := map[byte]int{}
	for part := range 2 {
		for _, b := range f.log("t", part) {
			var rb sluicev1.RecordBatch
			if err := proto.Unmarshal(b.stored, &rb); err != nil {
				t.Fatal(err)
			}
			for _, r := range rb.GetRecords() {
				k := r.GetKey()[0]
				if got := string(r.GetValue()); got != fmt.Sprint(next[k]) {
					t.Fatalf("producer %d: record %q after %d", k, got, next[k]-1)
				}
				next[k]++
			}
		}
	}
	if next[0] != n || next[1] != n || next[2] != n || next[3] != n || next[9] != 20 {
		t.Fatalf("records per producer: %v", next)
	}
}
