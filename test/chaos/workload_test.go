package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
)

// ack is a record the cluster acknowledged with acks=all.
type ack struct {
	part int32
	off  int64
	val  string
	at   time.Time
}

// seen is a record a consumer returned.
type seen struct {
	part     int32
	off      int64
	val      string
	at       time.Time
	consumer int
}

// history is everything the workload sent, was told and saw.
type history struct {
	mu struct {
		sync.Mutex
		acks   []ack
		failed map[string]error     // value -> why its produce failed (outcome unknown)
		failAt map[string]time.Time // value -> when
		sent   map[string]int32     // value -> partition it was sent to
		seen   []seen
	}
	acked    atomic.Int64
	failures atomic.Int64
	consumed atomic.Int64
}

func newHistory() *history {
	h := &history{}
	h.mu.failed = map[string]error{}
	h.mu.failAt = map[string]time.Time{}
	h.mu.sent = map[string]int32{}
	return h
}

func (h *history) sent(val string, part int32) {
	h.mu.Lock()
	h.mu.sent[val] = part
	h.mu.Unlock()
}

func (h *history) result(r *clients.Record, val string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.mu.failed[val] = err
		h.mu.failAt[val] = time.Now()
		h.failures.Add(1)
		return
	}
	h.mu.acks = append(h.mu.acks, ack{part: r.Partition, off: r.Offset, val: val, at: time.Now()})
	h.acked.Add(1)
}

func (h *history) saw(consumer int, recs []*clients.Record) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range recs {
		h.mu.seen = append(h.mu.seen, seen{part: r.Partition, off: r.Offset, val: string(r.Key), at: now, consumer: consumer})
	}
	h.consumed.Add(int64(len(recs)))
}

// workload produces and consumes on a topic until stopped.
type workload struct {
	t          *testing.T
	c          *cluster
	topic      string
	partitions int32
	h          *history
	ctx        context.Context // ends the produce loops
	cancel     context.CancelFunc
	// recCtx is the records' context, ended only by close: stopProducing
	// ends the loops and then waits for every record's outcome, so a record
	// still waiting for its batch is not failed by the stop itself.
	recCtx     context.Context
	recCancel  context.CancelFunc
	prodWG     sync.WaitGroup
	consWG     sync.WaitGroup
	consCancel context.CancelFunc
	producers  []*clients.Producer
	consumers  []*clients.Consumer
}

type workloadOpts struct {
	producers, consumers int
	pause                time.Duration // mean pause between records of one producer
	valueBytes           int
}

func startWorkload(t *testing.T, c *cluster, topic string, partitions int32, o workloadOpts) *workload {
	t.Helper()
	w := &workload{t: t, c: c, topic: topic, partitions: partitions, h: newHistory()}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.recCtx, w.recCancel = context.WithCancel(context.Background())
	var cctx context.Context
	cctx, w.consCancel = context.WithCancel(context.Background())
	for i := range o.producers {
		p, err := clients.NewProducer(clients.Brokers(c.addrs()...), clients.ManualPartitioning(),
			clients.Linger(2*time.Millisecond), clients.DeliveryTimeout(4*time.Minute),
			clients.RequestTimeout(callTimeout), clients.RetryBackoff(20*time.Millisecond, time.Second),
			clients.MaxBufferedRecords(200))
		if err != nil {
			t.Fatal(err)
		}
		w.producers = append(w.producers, p)
		w.prodWG.Add(1)
		go w.produce(i, p, o)
	}
	for i := range o.consumers {
		assign := map[int32]clients.Offset{}
		for p := range partitions {
			assign[p] = clients.AtStart()
		}
		cons, err := clients.NewConsumer(clients.Brokers(c.addrs()...), clients.RequestTimeout(callTimeout),
			clients.RetryBackoff(20*time.Millisecond, time.Second), clients.FetchMaxWait(500*time.Millisecond),
			clients.ConsumePartitions(map[string]map[int32]clients.Offset{topic: assign}))
		if err != nil {
			t.Fatal(err)
		}
		w.consumers = append(w.consumers, cons)
		w.consWG.Add(1)
		go w.consume(cctx, i, cons)
	}
	t.Cleanup(w.close)
	return w
}

// produce sends unique values "w<i>-<seq>" to random partitions, asynchronously.
func (w *workload) produce(i int, p *clients.Producer, o workloadOpts) {
	defer w.prodWG.Done()
	rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
	pad := make([]byte, max(o.valueBytes-16, 0))
	for j := range pad {
		pad[j] = 'x'
	}
	for seq := 0; w.ctx.Err() == nil; seq++ {
		val := fmt.Sprintf("w%d-%09d", i, seq)
		part := rng.Int32N(w.partitions)
		w.h.sent(val, part)
		rec := &clients.Record{Topic: w.topic, Partition: part, Key: []byte(val), Value: append([]byte(val+"|"), pad...)}
		p.Produce(w.recCtx, rec, func(r *clients.Record, err error) { w.h.result(r, val, err) })
		if o.pause > 0 {
			d := time.Duration(rng.Int64N(int64(2 * o.pause)))
			select {
			case <-w.ctx.Done():
			case <-time.After(d):
			}
		}
	}
}

func (w *workload) consume(ctx context.Context, i int, cons *clients.Consumer) {
	defer w.consWG.Done()
	for ctx.Err() == nil {
		recs, err := cons.Poll(ctx)
		if len(recs) > 0 {
			w.h.saw(i, recs)
		}
		if err != nil && ctx.Err() == nil {
			var pe *clients.PartitionError
			if errors.As(err, &pe) { // a partition failed for good: start it again where it was
				if pos, ok := cons.Position(w.topic, pe.Partition); ok {
					cons.Seek(w.topic, pe.Partition, clients.At(pos))
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// stopProducing ends the produce loops and waits, with a generous guard, for every
// record sent to have an outcome.
func (w *workload) stopProducing() {
	w.t.Helper()
	w.cancel()
	w.prodWG.Wait()
	for _, p := range w.producers {
		ctx, cancel := context.WithTimeout(context.Background(), settleGuard)
		err := p.Flush(ctx)
		cancel()
		if err != nil {
			w.t.Errorf("flush: %v", err)
		}
	}
}

// stopConsuming ends the consumers.
func (w *workload) stopConsuming() {
	w.consCancel()
	w.consWG.Wait()
}

func (w *workload) close() {
	w.cancel()
	w.recCancel()
	w.prodWG.Wait()
	w.consCancel()
	w.consWG.Wait()
	for _, p := range w.producers {
		p.Close()
	}
	for _, c := range w.consumers {
		c.Close()
	}
	w.producers, w.consumers = nil, nil
}
