package produce

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

const (
	maxBatchRecords = 1000
	maxBatchBytes   = 512 << 10
	maxInFlight     = 32
)

// sender batches records per partition and pipelines the batches on one ProduceStream.
//
// Its receive goroutine is started by newSender and stopped by close, which waits for it.
// mu guards the results the receive goroutine writes.
type sender struct {
	topic      string
	partition  int32 // fixed partition, or -1
	partitions int32 // partition count, for keys
	acks       sluicev1.Acks
	comp       sluicev1.Compression

	stream  sluicev1.ProducerService_ProduceStreamClient
	cancel  context.CancelFunc
	slots   chan struct{} // in-flight bound
	done    chan struct{} // receive goroutine ended
	pending map[int32]*pendingBatch
	nextID  uint64

	mu struct {
		sync.Mutex
		inflight map[uint64]sent
		parts    map[int32]*PartitionSummary
		err      error
	}
}

type pendingBatch struct {
	records []*sluicev1.Record
	bytes   int
}

type sent struct {
	partition int32 // requested, -1 = server's choice
	records   int
}

func newSender(ctx context.Context, g *app.Globals, topic string, partition int32, acks sluicev1.Acks, comp sluicev1.Compression) (*sender, error) {
	conn, err := g.Conn()
	if err != nil {
		return nil, err
	}
	s := &sender{
		topic: topic, partition: partition, acks: acks, comp: comp,
		slots: make(chan struct{}, maxInFlight), done: make(chan struct{}),
		pending: map[int32]*pendingBatch{},
	}
	s.mu.inflight = map[uint64]sent{}
	s.mu.parts = map[int32]*PartitionSummary{}
	if partition < 0 {
		rctx, cancel := g.Request(ctx)
		md, err := sluicev1.NewClusterServiceClient(conn).GetMetadata(rctx, &sluicev1.GetMetadataRequest{Topics: []string{topic}})
		cancel()
		if err != nil {
			return nil, err
		}
		for _, t := range md.GetTopics() {
			if t.GetName() == topic {
				s.partitions = int32(len(t.GetPartitions()))
			}
		}
		if s.partitions == 0 {
			return nil, fmt.Errorf("topic %q does not exist (UNKNOWN_TOPIC)", topic)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := sluicev1.NewProducerServiceClient(conn).ProduceStream(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	s.stream, s.cancel = stream, cancel
	go s.receive()
	return s, nil
}

// add queues a record, sending its partition's batch when it is full.
func (s *sender) add(ctx context.Context, r *sluicev1.Record) error {
	p := s.partition
	if p < 0 && len(r.GetKey()) > 0 {
		p = batch.KeyPartition(r.GetKey(), s.partitions)
	}
	b := s.pending[p]
	if b == nil {
		b = &pendingBatch{}
		s.pending[p] = b
	}
	b.records = append(b.records, r)
	b.bytes += proto.Size(r)
	if len(b.records) >= maxBatchRecords || b.bytes >= maxBatchBytes {
		return s.send(ctx, p, b)
	}
	return nil
}

// flush sends every pending batch.
func (s *sender) flush(ctx context.Context) error {
	for p, b := range s.pending {
		if err := s.send(ctx, p, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *sender) send(ctx context.Context, p int32, b *pendingBatch) error {
	delete(s.pending, p)
	if err := s.firstErr(); err != nil {
		return err
	}
	select {
	case s.slots <- struct{}{}:
	case <-s.done:
		return s.firstErr()
	case <-ctx.Done():
		return ctx.Err()
	}
	rb := &sluicev1.RecordBatch{Records: b.records, RecordCount: int32(len(b.records))}
	if s.comp != sluicev1.Compression_COMPRESSION_NONE {
		var err error
		if rb, err = batch.Encode(b.records, s.comp); err != nil {
			return err
		}
	}
	req := &sluicev1.ProduceRequest{Topic: s.topic, Acks: s.acks, Batch: rb}
	if p >= 0 {
		req.Partition = proto.Int32(p)
	}
	s.nextID++
	s.mu.Lock()
	s.mu.inflight[s.nextID] = sent{partition: p, records: len(b.records)}
	s.mu.Unlock()
	if err := s.stream.Send(&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: s.nextID}); err != nil {
		<-s.done // the receive goroutine reports the stream's error
		if e := s.firstErr(); e != nil {
			return e
		}
		return err
	}
	return nil
}

func (s *sender) receive() {
	defer close(s.done)
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.mu.Lock()
			if len(s.mu.inflight) > 0 && s.mu.err == nil {
				s.mu.err = err
			}
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		req, ok := s.mu.inflight[resp.GetCorrelationId()]
		delete(s.mu.inflight, resp.GetCorrelationId())
		if e := resp.GetError(); e != nil {
			if s.mu.err == nil {
				s.mu.err = app.ReasonOf(e)
			}
		} else if ok {
			r := resp.GetResponse()
			part := r.GetPartition()
			if req.partition >= 0 {
				part = req.partition
			}
			ps := s.mu.parts[part]
			if ps == nil {
				ps = &PartitionSummary{Partition: part, FirstOffset: -1, LastOffset: -1}
				s.mu.parts[part] = ps
			}
			ps.Records += int64(req.records)
			if base := r.GetBaseOffset(); base >= 0 {
				if ps.FirstOffset < 0 || base < ps.FirstOffset {
					ps.FirstOffset = base
				}
				if last := base + int64(req.records) - 1; last > ps.LastOffset {
					ps.LastOffset = last
				}
			}
		}
		s.mu.Unlock()
		<-s.slots
	}
}

func (s *sender) firstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err
}

// close sends what is pending, waits for every acknowledgement and stops the stream.
func (s *sender) close(ctx context.Context) error {
	err := s.flush(ctx)
	if cerr := s.stream.CloseSend(); err == nil && cerr != nil {
		err = cerr
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
	}
	s.cancel()
	if e := s.firstErr(); e != nil {
		return e
	}
	return err
}

func (s *sender) summary() map[int32]*PartitionSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.parts
}
