package server

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication"
)

// maxStreamInFlight and maxStreamInFlightBytes bound the requests of one
// ProduceStream that are received but not yet answered; the stream stops
// reading beyond them (one request larger than the byte bound is let
// through alone).
const (
	maxStreamInFlight      = 256
	maxStreamInFlightBytes = 64 << 20
)

// streamSlot is where the answer to one request will be, in order.
type streamSlot struct {
	resp chan *sluicev1.ProduceStreamResponse
	size int64
}

// byteBudget is a counting semaphore of bytes.
type byteBudget struct {
	max int64
	mu  struct {
		sync.Mutex
		used  int64
		freed chan struct{} // closed on release
	}
}

func newByteBudget(max int64) *byteBudget {
	b := &byteBudget{max: max}
	b.mu.freed = make(chan struct{})
	return b
}

func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.mu.used == 0 || b.mu.used+n <= b.max {
			b.mu.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.mu.freed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.mu.used -= n
	close(b.mu.freed)
	b.mu.freed = make(chan struct{})
	b.mu.Unlock()
}

type streamJob struct {
	req  *sluicev1.ProduceStreamRequest
	t    *cluster.Topic
	idx  int32
	slot chan *sluicev1.ProduceStreamResponse
}

// ProduceStream answers every request in order. Batches for different
// partitions are appended concurrently; batches for one partition are
// proposed one after the other, in stream order, so their offsets follow
// the order they were sent in, and many of them are in flight at once
// (partitionPipeline).
func (ps *producerService) ProduceStream(stream grpc.BidiStreamingServer[sluicev1.ProduceStreamRequest, sluicev1.ProduceStreamResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	slots := make(chan streamSlot, maxStreamInFlight)
	budget := newByteBudget(maxStreamInFlightBytes)
	var sendErr error
	senderDone := make(chan struct{})
	go func() { // the only sender on the stream
		defer close(senderDone)
		for slot := range slots {
			resp := <-slot.resp
			budget.release(slot.size)
			if sendErr != nil {
				continue
			}
			if err := stream.Send(resp); err != nil {
				sendErr = err
				cancel()
			}
		}
	}()
	queues := map[string]chan streamJob{}
	var workers sync.WaitGroup
	finish := func() {
		for _, q := range queues {
			close(q)
		}
		workers.Wait()
		close(slots)
		<-senderDone
	}
	reqs, recvErr := receive(ctx, stream.Recv)
	for {
		var req *sluicev1.ProduceStreamRequest
		select {
		case req = <-reqs:
		case err := <-recvErr:
			finish()
			if errors.Is(err, io.EOF) {
				return sendErr
			}
			return err
		case <-ps.s.stop:
			// Answer what was received, then end the stream.
			finish()
			return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, nil, "the node is shutting down")
		case <-ctx.Done():
			finish()
			return sendErr
		}
		size := int64(proto.Size(req))
		if err := budget.acquire(ctx, size); err != nil {
			finish()
			return sendErr
		}
		slot := make(chan *sluicev1.ProduceStreamResponse, 1)
		select {
		case slots <- streamSlot{resp: slot, size: size}:
		case <-ctx.Done():
			budget.release(size)
			finish()
			return sendErr
		}
		if verr := validateRequest(req.GetRequest()); verr != nil || req.GetRequest() == nil {
			if verr == nil {
				verr = invalidField("request", "missing")
			}
			slot <- ps.streamError(ctx, req, verr)
			continue
		}
		t, idx, err := ps.route(req.GetRequest())
		if err != nil {
			slot <- ps.streamError(ctx, req, err)
			continue
		}
		key := t.ID + "/" + itoa(idx)
		q, ok := queues[key]
		if !ok {
			q = make(chan streamJob, maxStreamInFlight)
			queues[key] = q
			workers.Add(1)
			go func() {
				defer workers.Done()
				ps.partitionPipeline(ctx, q)
			}()
		}
		q <- streamJob{req: req, t: t, idx: idx, slot: slot}
	}
}

// pipelined is a batch proposed to a local leader, waiting for its outcome.
type pipelined struct {
	op     *produceOp
	f      *replication.PendingProduce
	ctx    context.Context
	cancel context.CancelFunc
	job    streamJob
}

// partitionPipeline appends the jobs of one partition in order. A batch
// the local replica leads is proposed and handed to a waiter, so the next
// one is proposed before the first is durable; any other (forwarded, an
// election in progress) takes the full synchronous path. Both goroutines
// end when q is closed and every outcome is delivered.
func (ps *producerService) partitionPipeline(ctx context.Context, q <-chan streamJob) {
	waits := make(chan pipelined, maxStreamInFlight)
	waiterDone := make(chan struct{})
	go func() {
		defer close(waiterDone)
		for w := range waits {
			res, err := w.f.Wait(w.ctx)
			w.cancel()
			resp, err := ps.s.produced(w.op, res, err)
			ps.answer(ctx, w.job, resp, err)
		}
	}()
	defer func() {
		close(waits)
		<-waiterDone
	}()
	for j := range q {
		op, err := ps.s.prepareProduce(j.req.GetRequest(), j.t, j.idx)
		if err != nil {
			j.slot <- ps.streamError(ctx, j.req, err)
			continue
		}
		if op.p != nil {
			pctx, cancel := context.WithTimeout(ctx, op.timeout)
			f, err := op.p.Propose(pctx, op.pb, op.acks)
			if err == nil {
				waits <- pipelined{op: op, f: f, ctx: pctx, cancel: cancel, job: j}
				continue
			}
			cancel()
			if !errors.As(err, new(*replication.NotLeaderError)) {
				_, err = ps.s.produced(op, replication.ProduceResult{}, err)
				ps.answer(ctx, j, nil, err)
				continue
			}
		}
		resp, err := ps.s.runProduce(ctx, op)
		ps.answer(ctx, j, resp, err)
	}
}

// answer puts the outcome of a job in its slot.
func (ps *producerService) answer(ctx context.Context, j streamJob, resp *sluicev1.ProduceResponse, err error) {
	if err != nil {
		j.slot <- ps.streamError(ctx, j.req, err)
		return
	}
	j.slot <- &sluicev1.ProduceStreamResponse{CorrelationId: j.req.GetCorrelationId(), Response: resp}
}

func (ps *producerService) streamError(ctx context.Context, req *sluicev1.ProduceStreamRequest, err error) *sluicev1.ProduceStreamResponse {
	return &sluicev1.ProduceStreamResponse{CorrelationId: req.GetCorrelationId(), Error: ps.s.toAPIError(ctx, err).proto()}
}
