package server

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication"
	"github.com/sluicehq/sluice/storage"
)

const (
	defaultFetchMaxBytes     = 16 << 20
	defaultFetchPartMaxBytes = 1 << 20
	maxFetchWait             = 5 * time.Minute
)

type consumerService struct {
	sluicev1.UnimplementedConsumerServiceServer
	s *Server
}

// Fetch reads the partitions asked for; when fewer than min_bytes are
// available it waits, up to max_wait_ms, for any of them to move.
func (cs *consumerService) Fetch(ctx context.Context, req *sluicev1.FetchRequest) (*sluicev1.FetchResponse, error) {
	s := cs.s
	start := time.Now()
	defer func() { s.metrics.fetchLat.WithLabelValues().Observe(time.Since(start).Seconds()) }()
	t, ok := s.core.md.State().Topic(req.GetTopic())
	if !ok {
		return nil, s.callError(ctx, &cluster.UnknownTopicError{Topic: req.GetTopic()})
	}
	if node := s.readElsewhere(t, fetchPartitions(req)); node != 0 {
		resp := new(sluicev1.FetchResponse)
		if ok, err := s.forwardTo(ctx, node, sluicev1.ConsumerService_Fetch_FullMethodName, req, resp); ok {
			return resp, s.callError(ctx, err)
		}
	}
	maxBytes := int(req.GetMaxBytes())
	if maxBytes <= 0 {
		maxBytes = defaultFetchMaxBytes
	}
	partMax := int(req.GetPartitionMaxBytes())
	if partMax <= 0 {
		partMax = defaultFetchPartMaxBytes
	}
	wait := min(time.Duration(req.GetMaxWaitMs())*time.Millisecond, maxFetchWait)
	var deadline <-chan time.Time
	if wait > 0 && req.GetMinBytes() > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		deadline = tm.C
	}
	// The batches alias read buffers leased to the response: the codec
	// hands them back once it has marshalled it (servebuf.go).
	lease := &readLease{}
	for {
		lease.release() // a response below min_bytes is dropped
		resp, bytes, records, changed := cs.fetchOnce(ctx, t, req, maxBytes, partMax, lease)
		if bytes >= int(req.GetMinBytes()) || deadline == nil || len(changed) == 0 {
			cs.account(t.Name, bytes, records)
			leaseResponse(resp, lease)
			return resp, nil
		}
		cases := make([]reflect.SelectCase, 0, len(changed)+3)
		for _, ch := range []<-chan struct{}{ctx.Done(), s.stop} {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline)})
		for _, ch := range changed {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			lease.release()
			return nil, s.callError(ctx, ctx.Err())
		case 1, 2: // shutting down, or waited long enough: answer with what there is
			lease.release()
			resp, bytes, records, _ = cs.fetchOnce(ctx, t, req, maxBytes, partMax, lease)
			cs.account(t.Name, bytes, records)
			leaseResponse(resp, lease)
			return resp, nil
		}
	}
}

func (cs *consumerService) account(topic string, bytes, records int) {
	if records > 0 {
		cs.s.metrics.bytesOut.WithLabelValues(topic).Add(float64(bytes))
		cs.s.metrics.recordsOut.WithLabelValues(topic).Add(float64(records))
	}
}

// fetchOnce reads every requested partition once. It returns the response,
// the stored bytes and records in it, and the change channels of the partitions read
// successfully (taken before reading, so no move is missed).
func (cs *consumerService) fetchOnce(ctx context.Context, t *cluster.Topic, req *sluicev1.FetchRequest, maxBytes, partMax int, lease *readLease) (*sluicev1.FetchResponse, int, int, []<-chan struct{}) {
	s := cs.s
	resp := &sluicev1.FetchResponse{Topic: t.Name}
	total, records := 0, 0
	var changed []<-chan struct{}
	for _, pos := range req.GetPartitions() {
		fp := &sluicev1.FetchedPartition{Partition: pos.GetPartition(), HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1}
		resp.Partitions = append(resp.Partitions, fp)
		p, _, err := s.core.md.Partition(t.Name, pos.GetPartition())
		if err != nil {
			fp.Error = s.toAPIError(ctx, err).proto()
			continue
		}
		changed = append(changed, p.Changed())
		// A partition's first batch may exceed partition_max_bytes (else a
		// large batch would block its partition for good) but not what
		// is left of max_bytes, unless it is the first of the response.
		firstLimit := maxBytes - total
		if total == 0 {
			firstLimit = math.MaxInt
		}
		batches, n, recs, err := readSpliced(p, uint64(pos.GetOffset()), min(partMax, maxBytes-total), firstLimit, req.GetRecordFormat(), lease)
		hw := p.HighWatermark()
		fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset = int64(hw), int64(hw), int64(p.StartOffset())
		if err != nil {
			fp.Error = s.toAPIError(ctx, s.readError(t.Name, t.ID, err)).proto()
			continue
		}
		fp.Batches = batches
		total += n
		records += recs
	}
	return resp, total, records, changed
}

// readSpliced reads batches from offset within budget stored bytes (the
// first batch may be larger, up to firstLimit) into a buffer of lease and
// splices them into response batches without touching their records: the
// batches alias the buffer.
func readSpliced(p *replication.Partition, offset uint64, budget, firstLimit int, f sluicev1.RecordFormat, lease *readLease) ([]*sluicev1.RecordBatch, int, int, error) {
	if firstLimit <= 0 {
		return nil, 0, 0, nil
	}
	budget = max(budget, 1)
	var dst []storage.Batch
	if n := len(lease.batches); n < cap(lease.batches) {
		dst = lease.batches[:n+1][n][:0]
	}
	bs, err := p.ReadInto(dst, lease.buf(budget), offset, budget)
	if err != nil {
		return nil, 0, 0, err
	}
	lease.batches = append(lease.batches, bs)
	var out []*sluicev1.RecordBatch
	n, records := 0, 0
	for i, b := range bs {
		if i > 0 && n+len(b.Data) > budget {
			break
		}
		if i == 0 && len(b.Data) > firstLimit {
			break
		}
		rb, err := batch.Splice(b.Data, int64(b.BaseOffset), int64(b.Term), f)
		if err != nil {
			return nil, 0, 0, errors.Join(errCorruptStored, err)
		}
		out = append(out, rb)
		n += len(b.Data)
		records += int(b.Records)
	}
	return out, n, records, nil
}

// errCorruptStored: a stored batch failed to splice. It is never the
// client's fault, so it maps to INTERNAL (and is logged).
var errCorruptStored = errors.New("server: stored batch cannot be served")

func fetchPartitions(req *sluicev1.FetchRequest) []int32 {
	out := make([]int32, len(req.GetPartitions()))
	for i, p := range req.GetPartitions() {
		out[i] = p.GetPartition()
	}
	return out
}

// readElsewhere returns a node to forward a read to when this node holds a
// replica of none of the partitions asked for (and they exist): the
// preferred leader of the first. With some partitions here, the others
// answer NOT_LEADER for the client to ask elsewhere.
func (s *Server) readElsewhere(t *cluster.Topic, parts []int32) uint64 {
	if len(parts) == 0 {
		return 0
	}
	for _, idx := range parts {
		if idx < 0 || int(idx) >= len(t.Partitions) {
			return 0
		}
		if slices.Contains(t.Partitions[idx].Replicas, s.cfg.NodeID) {
			return 0
		}
	}
	return t.Partitions[parts[0]].Replicas[0]
}
