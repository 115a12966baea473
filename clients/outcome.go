package clients

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// finished is a batch's records with their outcome, for promises called outside the lock.
type finished struct {
	recs []promised
	err  error
}

// complete takes a batch's response: it finishes its records, or requeues the batch
// for a retry.
func (p *Producer) complete(b *pbatch, resp *sluicev1.ProduceResponse, err error) {
	p.mu.Lock()
	pb := b.part
	pb.inflight--
	if err == nil && !b.takenAt.IsZero() {
		// A moving average of round trips, as TCP's smoothed RTT (weight 1/8).
		d := time.Since(b.takenAt)
		if pb.rtt == 0 {
			pb.rtt = d
		} else {
			pb.rtt += (d - pb.rtt) / 8
		}
	}
	if err != nil && p.mu.closed {
		err = ErrClosed
	}
	var done []finished
	switch {
	case err == nil:
		done = append(done, p.finishLocked(b, resp, nil))
	case p.retryLocked(b, err):
	default:
		p.punchHoleLocked(b, err)
		done = append(done, p.finishLocked(b, nil, err))
	}
	// The sink has work only if the partition has a batch to send (a retried batch
	// pokes it when its backoff ends); waking it for nothing costs a sleeping thread's
	// wake-up on every acknowledgement.
	if pb.sink != nil && p.readyLocked(pb) {
		pb.sink.poke()
	}
	p.mu.Unlock()
	p.finish(done)
}

// retryLocked requeues b if err allows a retry and the delivery timeout has not passed,
// rerouting the partition when its leader moved.
func (p *Producer) retryLocked(b *pbatch, err error) bool {
	if p.mu.closed || time.Since(b.created) > p.cfg.deliveryTimeout {
		return false
	}
	pb := b.part
	idem := b.pid > 0
	ok := retriable(err, idem)
	if !ok && idem && errors.Is(err, ErrOutOfOrderSequence) {
		// An earlier batch is being retried, or a hole was punched after b was sealed:
		// b's sequence becomes valid once those are resolved. An earlier batch may also
		// be in flight again (resent on a new stream after the old one broke, while b
		// went ahead of it): any other batch of the partition still in flight may close
		// the gap, so b waits for it.
		ok = b.adjGen != pb.gen || pb.inflight > 0
		for _, q := range pb.batches {
			ok = ok || (q.sealed && q.order < b.order)
		}
	}
	if !ok {
		return false
	}
	b.attempts++
	i := 0
	for i < len(pb.batches) && pb.batches[i].order < b.order {
		i++
	}
	pb.batches = append(pb.batches, nil)
	copy(pb.batches[i+1:], pb.batches[i:])
	pb.batches[i] = b
	pb.backoffTill = time.Now().Add(p.cfg.backoff(b.attempts))

	e, _ := AsError(err)
	switch {
	case errors.Is(err, ErrNotLeader) && p.cl.noteLeader(pb.tp.topic, pb.tp.partition, e.Metadata):
		if addr := p.cl.leaderAddr(pb.tp.topic, pb.tp.partition); addr != "" && (pb.sink == nil || pb.sink.addr != addr) {
			if pb.sink != nil {
				pb.sink.removeLocked(pb)
			}
			delete(p.mu.unrouted, pb)
			p.sinkLocked(addr).addLocked(pb)
		}
	case errors.Is(err, ErrNotWritten) || errors.Is(err, ErrOutOfOrderSequence):
		// same leader; just back off
	default:
		if pb.sink != nil {
			pb.sink.removeLocked(pb)
		}
		p.mu.unrouted[pb] = struct{}{}
		p.kickRouter()
	}
	if pb.sink != nil {
		s := pb.sink
		time.AfterFunc(time.Until(pb.backoffTill), s.poke)
	}
	return true
}

// punchHoleLocked records that an idempotent batch failed without being written, so that
// later batches of the partition close the gap in sequence numbers.
func (p *Producer) punchHoleLocked(b *pbatch, err error) {
	e, ok := AsError(err)
	if !ok || b.pid <= 0 || e.Reason == sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED ||
		e.Reason == sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_OUTCOME {
		return
	}
	pb := b.part
	pb.gen++
	pb.holes = append(pb.holes, seqHole{seq: b.seq, count: b.count, gen: pb.gen})
	pb.nextSeq -= b.count
}

// finishLocked settles b's records with the response or err.
func (p *Producer) finishLocked(b *pbatch, resp *sluicev1.ProduceResponse, err error) finished {
	if err == nil {
		base := resp.GetBaseOffset()
		lat := resp.GetLogAppendTimeMs()
		for i, pr := range b.recs {
			pr.r.Partition = b.part.tp.partition
			pr.r.Offset = -1
			if base >= 0 {
				pr.r.Offset = base + int64(i)
			}
			if lat > 0 {
				pr.r.Timestamp = time.UnixMilli(lat)
			}
		}
	}
	p.mu.buffered -= len(b.recs)
	p.notifyLocked()
	return finished{recs: b.recs, err: err}
}

func (p *Producer) finish(done []finished) {
	for _, f := range done {
		for _, pr := range f.recs {
			<-p.sem
			pr.promise(pr.r, f.err)
		}
	}
}

// ensureProducerID obtains the producer id and epoch once. A server without
// InitProducer (UNIMPLEMENTED or UNSUPPORTED) makes the producer non-idempotent; that is
// logged once.
func (p *Producer) ensureProducerID() error {
	p.mu.Lock()
	st := p.mu.idState
	p.mu.Unlock()
	if st != idUnknown {
		return nil
	}
	p.idMu.Lock()
	defer p.idMu.Unlock()
	p.mu.Lock()
	st = p.mu.idState
	p.mu.Unlock()
	if st != idUnknown {
		return nil
	}
	var resp *sluicev1.InitProducerResponse
	err := p.cl.call(p.ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = sluicev1.NewProducerServiceClient(cc).InitProducer(ctx, &sluicev1.InitProducerRequest{})
		return err
	})
	if err != nil {
		if e, ok := AsError(err); ok && (e.Code == codes.Unimplemented || e.Reason == sluicev1.ErrorReason_ERROR_REASON_UNSUPPORTED) {
			p.mu.Lock()
			p.mu.idState = idDisabled
			p.mu.Unlock()
			p.cfg.logger.Warn("server does not support idempotent producers; producing without idempotence", "err", err)
			return nil
		}
		return err
	}
	p.mu.Lock()
	p.mu.producerID, p.mu.epoch, p.mu.idState = resp.GetProducerId(), resp.GetProducerEpoch(), idReady
	p.mu.Unlock()
	return nil
}
