package clients

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// sink sends the batches of the partitions one node leads. Its goroutine (run) takes
// ready batches and writes them to the node's ProduceStream; a receiver goroutine per
// stream matches the in-order responses to the batches in flight. Without
// ProduceStream (UnaryProduce, or a server answering UNIMPLEMENTED) each batch is one
// unary Produce call, one in flight per partition.
type sink struct {
	p    *Producer
	addr string
	wake chan struct{} // cap 1

	// sendMu is held by whoever takes and sends the sink's ready batches: its goroutine,
	// or a producing caller sending its own batch at once (sendNow). Holding it from the
	// take to the last Send keeps the stream's order the order batches were taken in.
	// It is taken before Producer.mu, never while holding it.
	sendMu sync.Mutex

	// guarded by Producer.mu
	parts   []*partBuf
	next    int
	stream  *pstream
	unary   bool
	timer   *time.Timer // pokes the sink when a waiting batch may go (pokeInLocked)
	timerAt time.Time
}

type pstream struct {
	stream   grpc.BidiStreamingClient[sluicev1.ProduceStreamRequest, sluicev1.ProduceStreamResponse]
	ctx      context.Context // canceled with cancel: ends the stream, its receiver and its watchdog
	cancel   context.CancelFunc
	inflight []*pbatch // guarded by Producer.mu; in send order
	corr     uint64    // guarded by Producer.mu
	broken   bool      // guarded by Producer.mu
}

func (p *Producer) sinkLocked(addr string) *sink {
	s := p.mu.sinks[addr]
	if s != nil {
		return s
	}
	s = &sink{p: p, addr: addr, wake: make(chan struct{}, 1), unary: p.cfg.unaryProduce}
	p.mu.sinks[addr] = s
	if !p.mu.closed {
		p.wg.Add(1)
		go s.run()
	}
	return s
}

func (s *sink) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sink) addLocked(pb *partBuf) {
	pb.sink = s
	s.parts = append(s.parts, pb)
	s.poke()
}

func (s *sink) removeLocked(pb *partBuf) {
	for i, q := range s.parts {
		if q == pb {
			s.parts = append(s.parts[:i], s.parts[i+1:]...)
			break
		}
	}
	pb.sink = nil
}

func (s *sink) run() {
	p := s.p
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-s.wake:
		}
		if err := p.ensureProducerID(); err != nil {
			p.cfg.logger.Warn("init producer failed; will retry", "err", err)
			time.AfterFunc(p.cfg.backoff(2), s.poke)
			continue
		}
		s.sendMu.Lock()
		s.sendReady()
		s.sendMu.Unlock()
	}
}

// sendReady takes and sends ready batches until none is left. The caller holds sendMu.
func (s *sink) sendReady() {
	p := s.p
	for {
		p.mu.Lock()
		bs := s.takeLocked(time.Now())
		p.mu.Unlock()
		if len(bs) == 0 {
			return
		}
		for _, b := range bs {
			s.send(b)
		}
	}
}

// directLocked reports whether ProduceSync may send pb's ready batch itself (sendNow)
// instead of handing it to the sink's goroutine: the partition has nothing in flight
// or backing off, and the sink has an open stream and a producer id, so sending waits
// for nothing but the stream.
func (s *sink) directLocked(pb *partBuf) bool {
	p := s.p
	return pb.inflight == 0 && !s.unary && s.stream != nil && !s.stream.broken &&
		p.mu.idState != idUnknown && !p.mu.closed &&
		(pb.backoffTill.IsZero() || !time.Now().Before(pb.backoffTill))
}

// sendNow sends the sink's ready batches on the caller's goroutine (ProduceSync), saving
// the hand-off to the sink's goroutine on the way to the wire: what a single
// synchronous produce waits for. When the sink is sending already, it is poked instead
// and sends them next. The caller holds a count of Producer.wg (it may open a stream).
func (s *sink) sendNow() {
	if !s.sendMu.TryLock() {
		s.poke()
		return
	}
	s.sendReady()
	s.sendMu.Unlock()
}

// takeLocked removes the batches that may be sent now, in partition order, and marks
// them in flight. When a batch waits for a round trip to turn slow (coalesceDoneLocked),
// the sink's timer pokes it then.
func (s *sink) takeLocked(now time.Time) []*pbatch {
	p := s.p
	maxIn := p.cfg.maxInflight
	if s.unary {
		maxIn = 1
	}
	var out []*pbatch
	var wait time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	n := len(s.parts)
	for i := range n {
		pb := s.parts[(s.next+i)%n]
		if now.Before(pb.backoffTill) {
			soonest(pb.backoffTill.Sub(now))
			continue
		}
		for pb.inflight < maxIn && (pb.inflight == 0 || pb.inflightOn == s) && p.readyLocked(pb) {
			ok, retry := coalesceDoneLocked(pb, now)
			if !ok {
				soonest(retry)
				break
			}
			b := pb.batches[0]
			pb.batches = pb.batches[1:]
			b.full = true
			if !b.sealed {
				p.sealLocked(b)
			}
			p.adjustSeqLocked(b)
			pb.inflight++
			pb.inflightOn = s
			pb.takenAt, b.takenAt = now, now
			out = append(out, b)
		}
	}
	if n > 0 {
		s.next = (s.next + 1) % n
	}
	if wait > 0 {
		s.pokeInLocked(now, wait)
	}
	return out
}

// pokeInLocked arms the sink's timer to poke it after d, unless it is armed to fire
// sooner already: one timer per sink, however often its batches wait.
func (s *sink) pokeInLocked(now time.Time, d time.Duration) {
	at := now.Add(d)
	if !s.timerAt.IsZero() && !s.timerAt.After(at) && s.timerAt.After(now) {
		return
	}
	s.timerAt = at
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.poke)
		return
	}
	s.timer.Reset(d)
}

// slowRound is how many of a partition's average round trips its last request may take
// before a batch with room goes behind it (coalesceDoneLocked).
const slowRound = 2

// coalesceDoneLocked reports whether pb's first batch may go while others of the
// partition are in flight, and if not, how long until it may. A batch that is sealed or
// full (or a retry) goes at once. A batch with room waits for the partition's requests
// in flight to be answered, and records produced meanwhile join it, so a partition sends
// one request per round trip unless its batches fill faster: at a steady rate the
// records of a round trip share one request, one Raft entry and one fsync on each
// replica instead of taking one each (franz-go keeps one produce request in flight per
// broker for the same reason). But once the last request has been out for slowRound
// times the partition's average round trip (a slow fsync or a stall somewhere), the
// batch goes behind it: its records would otherwise wait for the slow answer and then
// for a whole round trip of their own, while sent now they are replicated in the
// meantime and answered right after it. That costs at most one request more per slow
// round.
func coalesceDoneLocked(pb *partBuf, now time.Time) (bool, time.Duration) {
	if pb.inflight == 0 {
		return true, 0
	}
	b := pb.batches[0]
	if b.sealed || b.full || len(pb.batches) > 1 {
		return true, 0
	}
	if pb.rtt <= 0 {
		return false, 0
	}
	left := pb.takenAt.Add(slowRound * pb.rtt).Sub(now)
	return left <= 0, left
}

// sealLocked fixes b's records and assigns its producer id and sequence; the sink
// encodes it outside the lock (encode).
func (p *Producer) sealLocked(b *pbatch) {
	b.sealed = true
	b.count = int32(b.b.Count())
	pb := b.part
	pb.lastBytes = b.b.Len()
	if p.mu.idState == idReady {
		b.pid, b.epoch, b.seq = p.mu.producerID, p.mu.epoch, pb.nextSeq
		pb.nextSeq += b.count
		if pb.nextSeq < 0 { // wraps like Kafka's sequences
			pb.nextSeq -= -1 << 31
		}
		b.adjGen = pb.gen
	}
}

// adjustSeqLocked moves b's sequence down past holes punched since it was sealed.
func (p *Producer) adjustSeqLocked(b *pbatch) {
	pb := b.part
	if b.pid <= 0 || b.adjGen == pb.gen {
		return
	}
	for _, h := range pb.holes {
		if h.gen > b.adjGen && h.seq < b.seq {
			b.seq -= h.count
		}
	}
	b.adjGen = pb.gen
}

// encode builds b's RecordBatch (compressing it) the first time it is sent and stamps
// its current sequence. Called without Producer.mu by the goroutine sending b.
func (p *Producer) encode(b *pbatch) error {
	if b.rb == nil {
		rb, err := b.b.Finish(p.cfg.compression)
		if err != nil {
			return err
		}
		b.rb = rb
	}
	if b.pid > 0 {
		b.rb.ProducerId, b.rb.ProducerEpoch, b.rb.BaseSequence = b.pid, b.epoch, b.seq
	}
	return nil
}

func (s *sink) send(b *pbatch) {
	p := s.p
	if err := p.encode(b); err != nil {
		p.complete(b, nil, err)
		return
	}
	req := &sluicev1.ProduceRequest{
		Topic: b.part.tp.topic, Partition: &b.part.tp.partition, Acks: p.cfg.acks, Batch: b.rb,
		TimeoutMs: int32(p.cfg.serverProduceTimeout() / time.Millisecond),
	}
	p.mu.Lock()
	unary := s.unary
	p.mu.Unlock()
	if unary {
		cc, err := p.cl.conn(s.addr)
		if err != nil {
			p.complete(b, nil, err)
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			ctx, cancel := context.WithTimeout(p.ctx, p.cfg.produceRequestTimeout())
			resp, err := sluicev1.NewProducerServiceClient(cc).Produce(ctx, req, produceCall)
			cancel()
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && p.ctx.Err() == nil {
				err = requestTimedOut(s.addr)
				p.cl.setSuspect(s.addr, true)
			}
			p.complete(b, resp, fromStatus(err))
		}()
		return
	}
	st, err := s.streamFor()
	if err != nil {
		// Nothing was sent; the node may be gone, so the partition's leader is looked up again.
		p.complete(b, nil, &Error{Code: codes.Unavailable, Reason: sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, Message: err.Error()})
		return
	}
	p.mu.Lock()
	if st.broken {
		p.mu.Unlock()
		p.complete(b, nil, &Error{Code: codes.Unavailable, Reason: sluicev1.ErrorReason_ERROR_REASON_NOT_WRITTEN, Message: "stream closed"})
		return
	}
	st.corr++
	b.corr = st.corr
	b.sentAt = time.Now()
	st.inflight = append(st.inflight, b)
	p.mu.Unlock()
	if err := st.stream.Send(&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: b.corr}); err != nil {
		st.cancel() // the receiver fails what is in flight
	}
}

// streamFor returns the node's open stream, opening one (and its receiver) if needed.
// Only the sink's goroutine calls it.
func (s *sink) streamFor() (*pstream, error) {
	p := s.p
	p.mu.Lock()
	st := s.stream
	p.mu.Unlock()
	if st != nil {
		return st, nil
	}
	cc, err := p.cl.conn(s.addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(p.ctx)
	stream, err := sluicev1.NewProducerServiceClient(cc).ProduceStream(ctx, produceCall)
	if err != nil {
		cancel()
		return nil, err
	}
	st = &pstream{stream: stream, ctx: ctx, cancel: cancel}
	p.mu.Lock()
	s.stream = st
	p.mu.Unlock()
	p.wg.Add(2)
	go s.receive(st)
	go s.watch(st)
	return st, nil
}

// watch is a stream's watchdog (Kafka's request.timeout.ms): when the oldest batch in
// flight has had no answer for the request timeout, the node is taken to be stuck
// (a paused process, a half-open connection) and the stream is failed, so its batches
// are retried (an unknown outcome: the idempotent producer's sequences make the retry
// safe) after a metadata refresh. Answers come in order, so only the oldest batch's
// age matters. It ends with the stream.
func (s *sink) watch(st *pstream) {
	p := s.p
	defer p.wg.Done()
	timeout := p.cfg.produceRequestTimeout()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		wait := timeout
		p.mu.Lock()
		if len(st.inflight) > 0 {
			wait = time.Until(st.inflight[0].sentAt.Add(timeout))
		}
		p.mu.Unlock()
		if wait <= 0 {
			p.cfg.logger.Warn("no produce answer within the request timeout; failing the stream", "node", s.addr, "timeout", timeout)
			p.cl.setSuspect(s.addr, true)
			s.streamFailed(st, requestTimedOut(s.addr))
			return
		}
		t.Reset(wait)
	}
}

// requestTimedOut is the outcome of a produce request that got no answer in time: it
// may have been written.
func requestTimedOut(addr string) error {
	return &Error{Code: codes.DeadlineExceeded, Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_OUTCOME,
		Message: "no answer from " + addr + " within the request timeout"}
}

func (s *sink) receive(st *pstream) {
	p := s.p
	defer p.wg.Done()
	for {
		resp, err := st.stream.Recv()
		if err != nil {
			s.streamFailed(st, err)
			return
		}
		p.mu.Lock()
		if len(st.inflight) == 0 || st.inflight[0].corr != resp.GetCorrelationId() {
			p.mu.Unlock()
			s.streamFailed(st, errors.New("sluice: produce stream answered out of order"))
			return
		}
		b := st.inflight[0]
		st.inflight = st.inflight[1:]
		p.mu.Unlock()
		var rerr error
		if resp.GetError() != nil {
			rerr = fromProto(resp.GetError())
		} else if resp.GetResponse() == nil {
			rerr = &Error{Code: codes.Internal, Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_OUTCOME, Message: "empty produce response"}
		}
		p.complete(b, resp.GetResponse(), rerr)
		if rerr == nil {
			recycleBatch(b) // batchbuf.go
		}
	}
}

// streamFailed ends a stream: its batches in flight are retried or failed.
func (s *sink) streamFailed(st *pstream, err error) {
	p := s.p
	st.cancel()
	err = fromStatus(err)
	e, _ := AsError(err)
	unimplemented := e != nil && e.Code == codes.Unimplemented
	p.mu.Lock()
	st.broken = true
	bs := st.inflight
	st.inflight = nil
	if s.stream == st {
		s.stream = nil
	}
	if unimplemented && !s.unary {
		s.unary = true
		p.cfg.logger.Info("server does not implement ProduceStream; producing with unary calls", "node", s.addr)
	}
	p.mu.Unlock()
	var berr error
	switch {
	case p.ctx.Err() != nil:
		berr = ErrClosed
	case unimplemented:
		berr = &Error{Code: codes.Unavailable, Reason: sluicev1.ErrorReason_ERROR_REASON_NOT_WRITTEN, Message: "ProduceStream not implemented"}
	default:
		msg := "produce stream failed"
		if e != nil {
			msg = e.Error()
		} else if err != nil {
			msg = err.Error()
		}
		berr = &Error{Code: codes.Unavailable, Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_OUTCOME, Message: msg}
	}
	for _, b := range bs {
		p.complete(b, nil, berr)
	}
	s.poke()
}
