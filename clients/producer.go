package clients

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Producer sends records to partition leaders in batches. It is safe for concurrent use.
type Producer struct {
	cfg config
	cl  *cluster

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // router, sinks and their stream receivers, unary calls
	sem    chan struct{}  // one token per buffered record
	kick   chan struct{}  // wakes the router (cap 1)
	idMu   sync.Mutex     // serializes InitProducer

	mu struct {
		sync.Mutex
		closed   bool
		parts    map[topicPartition]*partBuf
		sticky   map[string]*stickyState
		sinks    map[string]*sink
		unrouted map[*partBuf]struct{}
		buffered int // records produced and not yet finished
		flushing int // Flush calls waiting
		waiters  []chan struct{}
		order    uint64 // batch creation counter
		scratch  recordScratch

		idState    idState
		producerID int64
		epoch      int32
	}
}

type idState int8

const (
	idUnknown idState = iota
	idReady
	idDisabled
)

type topicPartition struct {
	topic     string
	partition int32
}

type stickyState struct {
	partition int32
	batch     *pbatch // the batch the last unkeyed record went into
	bytes     int     // record bytes produced to partition since it was chosen
}

// partBuf is the producer's state of one partition. All fields are guarded by
// Producer.mu.
type partBuf struct {
	tp          topicPartition
	batches     []*pbatch // in order; only the last may be open
	inflight    int
	inflightOn  *sink
	sink        *sink // nil while unrouted
	nextSeq     int32
	backoffTill time.Time
	holes       []seqHole // sequence ranges of batches that failed unwritten
	gen         int       // counts holes ever punched
	lastBytes   int       // encoded size of the last sealed batch: the next one's size hint
	// takenAt is when the partition's last batch was taken for sending, and rtt a moving
	// average of its batches' round trips (taken to answered): a batch with room may go
	// behind one in flight once that one is slow (coalesceDoneLocked).
	takenAt time.Time
	rtt     time.Duration
}

// seqHole is the sequence range of an idempotent batch the server refused: later
// batches of the partition move down by count so the sequence stays gapless.
type seqHole struct {
	seq, count int32
	gen        int
}

// pbatch is a batch of records of one partition, open while records are added, sealed
// (rb set) once it is taken for sending.
type pbatch struct {
	part     *partBuf
	order    uint64
	b        batch.Builder
	recs     []promised
	created  time.Time
	lingered bool // linger passed
	full     bool // no more records fit
	sealed   bool // taken for sending: records, count and sequence are fixed
	count    int32
	pid      int64 // producer id, epoch and base sequence; pid 0 when not idempotent
	epoch    int32
	seq      int32
	attempts int
	corr     uint64
	takenAt  time.Time // when last taken for sending: its round trip runs from here
	sentAt   time.Time // when last sent on a stream: its request timeout runs from here
	adjGen   int       // holes up to this generation are applied to seq

	// rb is the encoded batch, built by the sink outside Producer.mu the first time the
	// batch is sent; only the goroutine sending the batch touches it.
	rb *sluicev1.RecordBatch
}

type promised struct {
	r       *Record
	promise func(*Record, error)
}

// NewProducer starts a producer. It connects lazily: the first Produce of a topic loads
// its metadata.
func NewProducer(opts ...ProducerOpt) (*Producer, error) {
	cfg := defaults()
	for _, o := range opts {
		o.applyProducer(&cfg)
	}
	if len(cfg.brokers) == 0 {
		return nil, errors.New("sluice: no brokers configured")
	}
	p := &Producer{cfg: cfg, cl: newCluster(&cfg), sem: make(chan struct{}, cfg.maxBuffered), kick: make(chan struct{}, 1)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.mu.parts = make(map[topicPartition]*partBuf)
	p.mu.sticky = make(map[string]*stickyState)
	p.mu.sinks = make(map[string]*sink)
	p.mu.unrouted = make(map[*partBuf]struct{})
	if !cfg.idempotent {
		p.mu.idState = idDisabled
	}
	p.wg.Add(1)
	go p.route()
	return p, nil
}

// Produce buffers r for its topic and calls promise (from a producer goroutine, in order
// per partition) once r is acknowledged or has failed. It blocks only while
// MaxBufferedRecords records are buffered or the topic's metadata is loading; ctx bounds
// that wait. A nil promise ignores the result.
func (p *Producer) Produce(ctx context.Context, r *Record, promise func(*Record, error)) {
	p.produce(ctx, r, promise, false)
}

// produce is Produce; held leaves the record's batch for the caller to send
// (ProduceSync).
func (p *Producer) produce(ctx context.Context, r *Record, promise func(*Record, error), held bool) {
	if promise == nil {
		promise = func(*Record, error) {}
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		promise(r, ctx.Err())
		return
	case <-p.ctx.Done():
		promise(r, ErrClosed)
		return
	}
	fail := func(err error) { <-p.sem; promise(r, err) }
	if r.Topic == "" {
		fail(&Error{Code: codes.InvalidArgument, Reason: sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST, Message: "record has no topic",
			Metadata: map[string]string{"field": "topic"}})
		return
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	n, err := p.cl.partitions(ctx, r.Topic)
	if err != nil {
		fail(err)
		return
	}
	if p.cfg.manualPartition && (r.Partition < 0 || r.Partition >= n) {
		fail(&Error{Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION, Message: "partition " + itoa(int64(r.Partition)) + " out of range",
			Metadata: map[string]string{"topic": r.Topic, "partition": itoa(int64(r.Partition))}})
		return
	}
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		fail(ErrClosed)
		return
	}
	// The record is encoded into its batch under the lock, through a sluicev1.Record
	// reused for every record rather than allocated for each (record.go).
	pr := p.mu.scratch.of(r)
	size := batch.RecordSize(pr)
	var st *stickyState
	switch {
	case p.cfg.manualPartition:
	case len(r.Key) > 0:
		r.Partition = batch.KeyPartition(r.Key, n)
	default:
		st = p.stickyLocked(r.Topic, n)
		r.Partition = st.partition
	}
	pb := p.partLocked(topicPartition{r.Topic, r.Partition})
	b := p.openBatchLocked(pb, size)
	if err := b.b.Append(pr); err != nil {
		if b.b.Count() == 0 { // drop the batch this record opened
			pb.batches = pb.batches[:len(pb.batches)-1]
		}
		p.mu.Unlock()
		fail(err)
		return
	}
	b.recs = append(b.recs, promised{r, promise})
	p.mu.buffered++
	if b.b.Len() >= p.cfg.maxBatchBytes {
		b.full = true
	}
	if st != nil {
		st.batch = b
		st.bytes += size
	}
	if !held && p.readyLocked(pb) && pb.sink != nil {
		pb.sink.poke()
	}
	p.mu.Unlock()
}

// stickyLocked returns the sticky partition for records without a key. It stays until
// StickyPartitionBytes of records went to it (Kafka's KIP-794), and past that until the
// batch it was filling is sealed, then moves to the least loaded partition. The byte
// floor matters when batches are sent early (Linger 0, or a partition with nothing in
// flight): moving on after every sent batch would make each record its own batch and
// Raft entry on a different partition.
func (p *Producer) stickyLocked(topic string, n int32) *stickyState {
	st := p.mu.sticky[topic]
	if st == nil {
		st = &stickyState{partition: -1}
		p.mu.sticky[topic] = st
	}
	if st.partition >= 0 && st.partition < n {
		if st.bytes < p.cfg.stickyBytes {
			return st
		}
		pb := p.mu.parts[topicPartition{topic, st.partition}]
		if pb != nil && st.batch != nil && len(pb.batches) > 0 {
			if last := pb.batches[len(pb.batches)-1]; last == st.batch && !last.sealed && !last.full {
				return st
			}
		}
	}
	st.partition, st.batch, st.bytes = p.leastLoadedLocked(topic, n, st.partition), nil, 0
	return st
}

// leastLoadedLocked picks the next sticky partition: at random among those with the
// fewest batches in flight or queued (Kafka's adaptive partitioning weighs its choice by
// queue sizes for the same reason). Records sent to a partition still waiting for an
// answer would wait for it too, while one with nothing outstanding sends them at once;
// and a partition whose leader is slow keeps batches in flight and queued, so new
// records go to partitions that keep up instead of queueing behind it. The partition
// the records leave loses ties, and partitions without a known leader are picked only
// when all are such. Topics with many partitions are weighed by a random sample, so a
// move costs the same however many partitions there are.
func (p *Producer) leastLoadedLocked(topic string, n, leaving int32) int32 {
	const (
		unrouted = 1 << 20
		sample   = 16
	)
	best, bestLoad, ties := int32(0), 0, 0
	consider := func(i int32) {
		load := 0 // twice the batches, so that one more for the partition left breaks ties
		if pb := p.mu.parts[topicPartition{topic, i}]; pb != nil {
			load = 2 * (pb.inflight + len(pb.batches))
			if pb.sink == nil {
				load += unrouted
			}
		}
		if i == leaving {
			load++
		}
		switch {
		case ties == 0 || load < bestLoad:
			best, bestLoad, ties = i, load, 1
		case load == bestLoad:
			ties++
			if rand.IntN(ties) == 0 { // uniform among the ties (reservoir sampling)
				best = i
			}
		}
	}
	if n <= sample {
		for i := range n {
			consider(i)
		}
	} else {
		for range sample {
			consider(rand.Int32N(n))
		}
	}
	return best
}

func (p *Producer) partLocked(tp topicPartition) *partBuf {
	pb := p.mu.parts[tp]
	if pb != nil {
		return pb
	}
	pb = &partBuf{tp: tp}
	p.mu.parts[tp] = pb
	if addr := p.cl.leaderAddr(tp.topic, tp.partition); addr != "" {
		p.sinkLocked(addr).addLocked(pb)
	} else {
		p.mu.unrouted[pb] = struct{}{}
		p.kickRouter()
	}
	return pb
}

// openBatchLocked returns the batch that takes a record of size bytes, starting a new
// one when the open batch is sealed or would grow past MaxBatchBytes.
func (p *Producer) openBatchLocked(pb *partBuf, size int) *pbatch {
	if n := len(pb.batches); n > 0 {
		last := pb.batches[n-1]
		if !last.sealed && !last.full {
			if last.b.Len()+size <= p.cfg.maxBatchBytes || last.b.Count() == 0 {
				return last
			}
			last.full = true
		}
	}
	p.mu.order++
	b := &pbatch{part: pb, order: p.mu.order, created: time.Now()}
	// A batch tends to grow as large as the one before it: reserve that much (and a
	// little more) at once rather than reallocating all the way up.
	growBatch(&b.b, min(pb.lastBytes+pb.lastBytes/8, p.cfg.maxBatchBytes+size)) // batchbuf.go
	pb.batches = append(pb.batches, b)
	if p.cfg.linger > 0 {
		time.AfterFunc(p.cfg.linger, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			b.lingered = true
			if b.part.sink != nil {
				b.part.sink.poke()
			}
		})
	}
	return b
}

// readyLocked reports whether pb has a batch to send now.
func (p *Producer) readyLocked(pb *partBuf) bool {
	if len(pb.batches) == 0 {
		return false
	}
	b := pb.batches[0]
	return b.sealed || b.full || b.lingered || p.cfg.linger <= 0 || p.mu.flushing > 0 || len(pb.batches) > 1
}

// Flush sends every buffered record without waiting for linger and returns once all of
// them are acknowledged or failed (or ctx ends).
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.mu.buffered == 0 {
		p.mu.Unlock()
		return nil
	}
	p.mu.flushing++
	ch := make(chan struct{})
	p.mu.waiters = append(p.mu.waiters, ch)
	for _, s := range p.mu.sinks {
		s.poke()
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.mu.flushing--
		p.mu.Unlock()
	}()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ProduceResult is the outcome of one record of ProduceSync.
type ProduceResult struct {
	Record *Record
	Err    error
}

// ProduceResults are the outcomes of ProduceSync, in the order of its records.
type ProduceResults []ProduceResult

// FirstErr returns the first error, or nil if every record was written.
func (rs ProduceResults) FirstErr() error {
	for _, r := range rs {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// First returns the first record and its error (for single-record calls).
func (rs ProduceResults) First() (*Record, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	return rs[0].Record, rs[0].Err
}

// ProduceSync produces records and waits for all their results. It does not wait for
// linger: the records' batches are sent at once.
func (p *Producer) ProduceSync(ctx context.Context, records ...*Record) ProduceResults {
	results := make(ProduceResults, len(records))
	var wg sync.WaitGroup
	wg.Add(len(records))
	// A single record's batch is left for this goroutine to send. With several, a
	// record may wait for room (MaxBufferedRecords) that only sending earlier ones
	// makes: their batches go to the sinks as Produce sends them.
	held := len(records) == 1
	for i, r := range records {
		p.produce(ctx, r, func(r *Record, err error) {
			results[i] = ProduceResult{r, err}
			wg.Done()
		}, held)
	}
	// The records' batches are sent from here when their partitions have nothing in
	// flight (sink.sendNow), sparing a synchronous produce the hand-off to a sink's
	// goroutine; the sinks send the others. The producer's WaitGroup counts this
	// goroutine while it sends, so Close waits for it.
	var direct []*sink
	p.mu.Lock()
	p.mu.flushing++
	for _, r := range records {
		pb := p.mu.parts[topicPartition{r.Topic, r.Partition}]
		if pb == nil || pb.sink == nil || !p.readyLocked(pb) {
			continue
		}
		if s := pb.sink; s.directLocked(pb) {
			if !slices.Contains(direct, s) {
				direct = append(direct, s)
			}
		} else {
			s.poke()
		}
	}
	if len(direct) > 0 {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if len(direct) > 0 {
		for _, s := range direct {
			s.sendNow()
		}
		p.wg.Done()
	}
	wg.Wait()
	p.mu.Lock()
	p.mu.flushing--
	p.mu.Unlock()
	return results
}

// Close stops the producer. Records not yet acknowledged fail with ErrClosed: call Flush
// first to deliver them. Close waits for the producer's goroutines and closes its
// connections.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	// Everything still buffered fails.
	p.mu.Lock()
	var failed []promised
	for _, pb := range p.mu.parts {
		for _, b := range pb.batches {
			failed = append(failed, b.recs...)
		}
		pb.batches = nil
	}
	p.mu.buffered -= len(failed)
	p.notifyLocked()
	p.mu.Unlock()
	for _, f := range failed {
		<-p.sem
		f.promise(f.r, ErrClosed)
	}
	return p.cl.close()
}

// notifyLocked wakes Flush callers once nothing is buffered.
func (p *Producer) notifyLocked() {
	if p.mu.buffered != 0 {
		return
	}
	for _, ch := range p.mu.waiters {
		close(ch)
	}
	p.mu.waiters = nil
}

func (p *Producer) kickRouter() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// route is the goroutine that places partitions on their leaders' sinks: it refreshes
// metadata when partitions are unrouted, with backoff, until they all have a leader.
func (p *Producer) route() {
	defer p.wg.Done()
	attempt := 0
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		}
		for {
			p.mu.Lock()
			n := len(p.mu.unrouted)
			p.mu.Unlock()
			if n == 0 {
				attempt = 0
				break
			}
			_, err := p.cl.refresh(p.ctx, p.cl.knownTopics()...)
			if err != nil {
				p.cfg.logger.Debug("metadata refresh failed", "err", err)
			}
			p.mu.Lock()
			for pb := range p.mu.unrouted {
				if addr := p.cl.leaderAddr(pb.tp.topic, pb.tp.partition); addr != "" {
					delete(p.mu.unrouted, pb)
					p.sinkLocked(addr).addLocked(pb)
				}
			}
			expired := p.expireUnroutedLocked()
			left := len(p.mu.unrouted)
			p.mu.Unlock()
			p.finish(expired)
			if left == 0 {
				attempt = 0
				break
			}
			attempt++
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(p.cfg.backoff(attempt)):
			}
		}
	}
}

// expireUnroutedLocked takes the batches of unrouted partitions that are past the
// delivery timeout.
func (p *Producer) expireUnroutedLocked() []finished {
	var out []finished
	now := time.Now()
	for pb := range p.mu.unrouted {
		for len(pb.batches) > 0 && now.Sub(pb.batches[0].created) > p.cfg.deliveryTimeout {
			b := pb.batches[0]
			pb.batches = pb.batches[1:]
			out = append(out, p.finishLocked(b, nil, &Error{Reason: sluicev1.ErrorReason_ERROR_REASON_LEADER_NOT_AVAILABLE,
				Message: "no leader for the partition within the delivery timeout"}))
		}
	}
	return out
}
