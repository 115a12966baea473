package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication"
)

type producerService struct {
	sluicev1.UnimplementedProducerServiceServer
	s  *Server
	rr atomic.Uint32 // round robin for batches without key or partition
}

func (ps *producerService) Produce(ctx context.Context, req *sluicev1.ProduceRequest) (*sluicev1.ProduceResponse, error) {
	t, idx, err := ps.route(req)
	if err != nil {
		return nil, ps.s.callError(ctx, err)
	}
	resp, err := ps.s.produce(ctx, req, t, idx)
	return resp, ps.s.callError(ctx, err)
}

// route finds the topic and the partition a request goes to: the one it
// names, else by the murmur2 hash of the first record's key (as Kafka's
// default partitioner), else round robin.
func (ps *producerService) route(req *sluicev1.ProduceRequest) (*cluster.Topic, int32, error) {
	if req.GetTransactionalId() != "" {
		return nil, 0, unsupported("transactional produce")
	}
	t, ok := ps.s.core.md.State().Topic(req.GetTopic())
	if !ok {
		return nil, 0, &cluster.UnknownTopicError{Topic: req.GetTopic()}
	}
	if cluster.Internal(t.Name) {
		return nil, 0, internalTopicWrite(t.Name)
	}
	n := int32(len(t.Partitions))
	if req.Partition != nil {
		idx := req.GetPartition()
		if idx < 0 || idx >= n {
			return nil, 0, &cluster.UnknownPartitionError{Topic: t.Name, Partition: idx}
		}
		return t, idx, nil
	}
	if key := firstKey(req.GetBatch(), t); len(key) > 0 {
		return t, batch.KeyPartition(key, n), nil
	}
	return t, int32(ps.rr.Add(1) % uint32(n)), nil
}

// firstKey is the key of a batch's first record. For the encoded shape it
// validates the batch first, so decompression stays within the topic's
// bounds, then decodes the records (only producers that leave the
// partition to the server pay for it).
func firstKey(b *sluicev1.RecordBatch, t *cluster.Topic) []byte {
	if len(b.GetRecords()) > 0 {
		return b.GetRecords()[0].GetKey()
	}
	if len(b.GetRecordsData()) == 0 {
		return nil
	}
	if _, _, err := batch.Normalize(b, batch.Limits{MaxBytes: int(t.Config().MaxMessageBytes)}); err != nil {
		return nil // produce reports the problem
	}
	recs, err := batch.Records(b)
	if err != nil || len(recs) == 0 {
		return nil // Normalize reports the problem
	}
	return recs[0].GetKey()
}

// produceOp is one validated produce request bound for a partition.
type produceOp struct {
	req     *sluicev1.ProduceRequest
	t       *cluster.Topic
	idx     int32
	p       *replication.Partition // nil: no replica here (forward)
	pb      replication.ProduceBatch
	acks    replication.Acks
	hdr     batch.Header
	start   time.Time
	timeout time.Duration
	cause   error // why p is nil
}

// prepareProduce validates a batch and stamps it for its partition.
func (s *Server) prepareProduce(req *sluicev1.ProduceRequest, t *cluster.Topic, idx int32) (*produceOp, error) {
	op := &produceOp{req: req, t: t, idx: idx, start: time.Now(), timeout: s.cfg.ProduceTimeout}
	p, _, err := s.core.md.Partition(t.Name, idx)
	if err != nil {
		var nr *cluster.NotReplicaError
		if !errors.As(err, &nr) {
			return nil, err
		}
		op.cause = err
		return op, nil
	}
	op.p = p
	tc := t.Config()
	now := time.Now().UnixMilli()
	lim := batch.Limits{MaxBytes: int(tc.MaxMessageBytes), NowMs: now}
	if tc.LogAppendTime {
		lim.LogAppendTimeMs = now
	}
	// The stored form is built behind room for the replication entry's
	// header, so the entry is not a second copy of the batch.
	// A batch the codec decoded in place is built in the received bytes
	// (producedecode.go), without copying it.
	framed, h, err := batch.NormalizeFramedIn(req.GetBatch(), lim, replication.CommandHeaderLen, takeRoom(req.GetBatch()))
	if err != nil {
		return nil, err
	}
	op.hdr = h
	op.pb = replication.ProduceBatch{
		Data: framed[replication.CommandHeaderLen:], Framed: framed,
		Records: uint32(h.RecordCount), MaxTimestamp: h.MaxTimestampMs,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
	}
	if h.Idempotent() {
		op.pb.ProducerID, op.pb.ProducerEpoch, op.pb.BaseSequence = h.ProducerID, h.ProducerEpoch, h.BaseSequence
	}
	op.acks = replication.AcksAll
	switch req.GetAcks() {
	case sluicev1.Acks_ACKS_NONE:
		op.acks = replication.AcksNone
	case sluicev1.Acks_ACKS_LEADER:
		op.acks = replication.AcksLeader
	}
	if ms := req.GetTimeoutMs(); ms > 0 {
		op.timeout = time.Duration(ms) * time.Millisecond
	}
	return op, nil
}

// produce validates and appends one batch to a partition of t.
func (s *Server) produce(ctx context.Context, req *sluicev1.ProduceRequest, t *cluster.Topic, idx int32) (*sluicev1.ProduceResponse, error) {
	op, err := s.prepareProduce(req, t, idx)
	if err != nil {
		return nil, err
	}
	return s.runProduce(ctx, op)
}

// runProduce appends op, forwarding it when the leader is elsewhere and
// waiting out elections while its timeout allows.
func (s *Server) runProduce(ctx context.Context, op *produceOp) (*sluicev1.ProduceResponse, error) {
	if op.p == nil {
		return s.forwardProduce(ctx, op.req, op.idx, 0, op.cause)
	}
	pctx, cancel := context.WithTimeout(ctx, op.timeout)
	defer cancel()
	var res replication.ProduceResult
	var err error
	for {
		res, err = produceWhenLed(pctx, op.p, op.pb, op.acks)
		var nl *replication.NotLeaderError
		if err == nil || !errors.As(err, &nl) || nl.Leader == 0 {
			break
		}
		// Nothing was proposed here: the leader is another node.
		resp, ferr := s.forwardProduce(pctx, op.req, op.idx, nl.Leader, err)
		if !unreachable(ferr) || pctx.Err() != nil {
			return resp, ferr
		}
		// The leader this replica knows is gone: wait for the next one.
		if werr := waitLeaderChange(pctx, op.p, nl.Leader); werr != nil {
			return nil, err
		}
	}
	return s.produced(op, res, err)
}

// produced turns the outcome of an append into the response.
func (s *Server) produced(op *produceOp, res replication.ProduceResult, err error) (*sluicev1.ProduceResponse, error) {
	if err != nil {
		return nil, s.readError(op.t.Name, op.t.ID, err)
	}
	s.metrics.bytesIn.WithLabelValues(op.t.Name).Add(float64(len(op.pb.Data)))
	s.metrics.recordsIn.WithLabelValues(op.t.Name).Add(float64(op.hdr.RecordCount))
	s.metrics.produceLat.WithLabelValues(op.req.GetAcks().String()).Observe(time.Since(op.start).Seconds())
	resp := &sluicev1.ProduceResponse{
		Partition: op.idx, BaseOffset: int64(res.BaseOffset), LogAppendTimeMs: -1,
		LogStartOffset: int64(op.p.StartOffset()),
	}
	if op.acks == replication.AcksNone {
		resp.BaseOffset = -1
	}
	if op.t.Config().LogAppendTime {
		resp.LogAppendTimeMs = op.hdr.MaxTimestampMs
	}
	return resp, nil
}

// waitLeaderChange waits until p knows a leader other than old.
func waitLeaderChange(ctx context.Context, p *replication.Partition, old uint64) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if l := p.Leader(); l != old && l != 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// produceWhenLed appends through p, waiting out an election (a new
// partition, or a leader change) while the context allows.
func produceWhenLed(ctx context.Context, p *replication.Partition, b replication.ProduceBatch, acks replication.Acks) (replication.ProduceResult, error) {
	backoff := 5 * time.Millisecond
	for {
		res, err := p.Produce(ctx, b, acks)
		var nl *replication.NotLeaderError
		if !errors.As(err, &nl) || nl.Leader != 0 {
			return res, err
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 100*time.Millisecond)
		case <-ctx.Done():
			return res, err
		}
	}
}

func (ps *producerService) InitProducer(ctx context.Context, req *sluicev1.InitProducerRequest) (*sluicev1.InitProducerResponse, error) {
	if req.GetTransactionalId() != "" {
		return nil, unsupported("transactional producers")
	}
	id, err := ps.s.core.md.NextProducerID(ctx)
	if err != nil {
		return nil, ps.s.callError(ctx, err)
	}
	return &sluicev1.InitProducerResponse{ProducerId: id, ProducerEpoch: 0}, nil
}

// internalTopicWrite refuses a client write to a system topic: only the
// server writes those.
func internalTopicWrite(topic string) *apiError {
	return newAPIError(codes.PermissionDenied, sluicev1.ErrorReason_ERROR_REASON_NOT_AUTHORIZED,
		map[string]string{"resource": "topic:" + topic}, "topic %q is internal: only the server writes it", topic)
}
