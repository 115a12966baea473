package clients_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// produceAll produces n records to partition 0 asynchronously and returns their results
// in produce order.
func produceAll(t *testing.T, p *clients.Producer, n int) []clients.ProduceResult {
	t.Helper()
	ctx := guard(t)
	res := make([]clients.ProduceResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		p.Produce(ctx, &clients.Record{Topic: "t", Value: make([]byte, 40)}, func(r *clients.Record, err error) {
			res[i] = clients.ProduceResult{Record: r, Err: err}
			wg.Done()
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return res
}

// checkSequences verifies the partition's batches carry gapless sequences from 0.
func checkSequences(t *testing.T, f *fake) int {
	t.Helper()
	want := int32(0)
	log := f.log("t", 0)
	for i, b := range log {
		if b.h.BaseSequence != want {
			t.Fatalf("batch %d: sequence %d, want %d", i, b.h.BaseSequence, want)
		}
		want += b.h.RecordCount
	}
	return int(want)
}

// Many small batches are pipelined on the stream; offsets follow produce order.
func TestPipelinedBatchesKeepOrder(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	p := newProducer(t, f, clients.Linger(0), clients.MaxBatchBytes(300), clients.MaxInflightPerPartition(5), clients.ManualPartitioning())
	res := produceAll(t, p, 500)
	for i, r := range res {
		if r.Err != nil || r.Record.Offset != int64(i) {
			t.Fatalf("record %d: offset %d, %v", i, r.Record.Offset, r.Err)
		}
	}
	if n := checkSequences(t, f); n != 500 || len(f.log("t", 0)) < 50 {
		t.Fatalf("%d records in %d batches", n, len(f.log("t", 0)))
	}
}

// A stream that breaks after the batch was written: the idempotent producer resends on
// a new stream and the partition keeps one copy.
func TestBrokenStreamRetriesIdempotently(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	f.breakStreams = 2
	p := newProducer(t, f, clients.Linger(0), clients.MaxBatchBytes(300), clients.ManualPartitioning())
	res := produceAll(t, p, 100)
	for i, r := range res {
		if r.Err != nil || r.Record.Offset != int64(i) {
			t.Fatalf("record %d: offset %d, %v", i, r.Record.Offset, r.Err)
		}
	}
	if n := checkSequences(t, f); n != 100 {
		t.Fatalf("%d records stored, want 100 (no duplicates)", n)
	}
}

// Without idempotence a broken stream's batches fail: resending could duplicate them.
func TestBrokenStreamFailsWithoutIdempotence(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	f.breakStreams = 1
	p := newProducer(t, f, clients.DisableIdempotence(), clients.ManualPartitioning())
	_, err := p.ProduceSync(guard(t), &clients.Record{Topic: "t", Value: []byte("v")}).First()
	if !errors.Is(err, clients.ErrUnknownOutcome) {
		t.Fatalf("err = %v", err)
	}
	if _, err := p.ProduceSync(guard(t), &clients.Record{Topic: "t", Value: []byte("v")}).First(); err != nil {
		t.Fatalf("next produce on a new stream: %v", err)
	}
}

// A batch refused in the middle of a pipeline fails alone; the batches behind it, sent
// with sequences after its own, are renumbered and written.
func TestRefusedBatchInPipelineLeavesNoGap(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	var once sync.Once
	refused := int32(-1)
	f.produceHook = func(_ int32, req *sluicev1.ProduceRequest) error {
		var err error
		if seq := req.GetBatch().GetBaseSequence(); seq > 100 {
			once.Do(func() {
				refused = seq
				err = apiError(codes.InvalidArgument, "BATCH_TOO_LARGE", nil)
			})
		}
		return err
	}
	// Hold the records back until all are buffered, so that batches pipeline.
	p := newProducer(t, f, clients.Linger(time.Hour), clients.MaxBatchBytes(300), clients.MaxInflightPerPartition(5), clients.ManualPartitioning())
	res := produceAll(t, p, 400)
	failed := 0
	for _, r := range res {
		if r.Err != nil {
			if !errors.Is(r.Err, clients.ErrBatchTooLarge) {
				t.Fatalf("unexpected error %v", r.Err)
			}
			failed++
		}
	}
	if refused < 0 || failed == 0 || failed > 10 {
		t.Fatalf("refused sequence %d, %d records failed", refused, failed)
	}
	if n := checkSequences(t, f); n != 400-failed {
		t.Fatalf("%d records stored, want %d", n, 400-failed)
	}
}

// Close does not wait for a server that never answers: batches in flight fail with
// ErrClosed and every goroutine ends (goleak checks in TestMain).
func TestCloseWithBatchInFlight(t *testing.T) {
	for _, unary := range []bool{false, true} {
		t.Run(map[bool]string{false: "stream", true: "unary"}[unary], func(t *testing.T) {
			f := newFake(t, 1)
			f.addTopic("t", 1)
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			f.produceHook = func(int32, *sluicev1.ProduceRequest) error {
				once.Do(func() { close(entered) })
				<-release
				return nil
			}
			t.Cleanup(func() { close(release) }) // runs before the fake stops
			opts := []clients.ProducerOpt{clients.DisableIdempotence()}
			if unary {
				opts = append(opts, clients.UnaryProduce())
			}
			p := newProducer(t, f, opts...)
			errc := make(chan error, 1)
			p.Produce(guard(t), &clients.Record{Topic: "t", Value: []byte("v")}, func(_ *clients.Record, err error) { errc <- err })
			<-entered
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; !errors.Is(err, clients.ErrClosed) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestUnaryProduceFollowsLeader(t *testing.T) {
	f := newFake(t, 2)
	f.addTopic("t", 1, 1)
	p := newProducer(t, f, clients.UnaryProduce())
	ctx := guard(t)
	if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("a")}).First(); err != nil {
		t.Fatal(err)
	}
	f.setLeader("t", 0, 2)
	res := produceAll(t, p, 50)
	for i, r := range res {
		if r.Err != nil || r.Record.Offset != int64(i+1) {
			t.Fatalf("record %d: %d, %v", i, r.Record.Offset, r.Err)
		}
	}
	if n := checkSequences(t, f); n != 51 {
		t.Fatalf("%d records", n)
	}
}

// Records produced while a partition's batch is in flight join one batch, sent when
// that batch is answered: a batch with room never goes while another of its partition
// is in flight, however many MaxInflightPerPartition allows.
func TestBatchesCoalesceWhileOneIsInFlight(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	arrived, release := make(chan struct{}), make(chan struct{})
	calls := 0
	f.produceHook = func(int32, *sluicev1.ProduceRequest) error {
		if calls++; calls == 1 {
			close(arrived)
			<-release
		}
		return nil
	}
	p := newProducer(t, f, clients.Linger(0), clients.MaxInflightPerPartition(5), clients.ManualPartitioning())
	ctx := guard(t)
	var wg sync.WaitGroup
	produce := func() {
		wg.Add(1)
		p.Produce(ctx, &clients.Record{Topic: "t", Value: make([]byte, 40)}, func(_ *clients.Record, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
	}
	produce()
	<-arrived
	// Spaced out, so that a producer that pipelined batches with room would have sent
	// each record alone: they would reach the fake before the release and be stored as
	// batches of their own.
	for range 4 {
		time.Sleep(20 * time.Millisecond)
		produce()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	var counts []int32
	for _, b := range f.log("t", 0) {
		counts = append(counts, b.h.RecordCount)
	}
	if len(counts) != 2 || counts[0] != 1 || counts[1] != 4 {
		t.Fatalf("batches of %v records, want [1 4]", counts)
	}
}
