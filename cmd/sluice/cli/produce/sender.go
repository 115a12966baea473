package produce

import (
	"context"
	"sync"

	"github.com/sluicehq/sluice/clients"
	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// sender hands records to a clients.Producer (which batches per partition, compresses,
// sends to leaders and retries) and collects where they landed.
//
// mu guards the results, written by the producer's promise goroutines.
type sender struct {
	topic     string
	partition int32 // fixed partition, or -1
	p         *clients.Producer

	mu struct {
		sync.Mutex
		parts map[int32]*PartitionSummary
		err   error
	}
}

func newSender(_ context.Context, g *app.Globals, topic string, partition int32, acks sluicev1.Acks, comp sluicev1.Compression) (*sender, error) {
	opts := []clients.ProducerOpt{
		clients.Brokers(g.BrokerList()...),
		clients.DialOptions(app.ClientDialOptions()...),
		clients.Acks(acks),
		clients.Compression(comp),
	}
	if g.Timeout > 0 {
		opts = append(opts, clients.RequestTimeout(g.Timeout))
	}
	if acks != sluicev1.Acks_ACKS_ALL {
		// Idempotence guards retries of batches whose outcome is unknown; that needs
		// every batch acknowledged by a majority.
		opts = append(opts, clients.DisableIdempotence())
	}
	if partition >= 0 {
		opts = append(opts, clients.ManualPartitioning())
	}
	p, err := clients.NewProducer(opts...)
	if err != nil {
		return nil, err
	}
	s := &sender{topic: topic, partition: partition, p: p}
	s.mu.parts = map[int32]*PartitionSummary{}
	return s, nil
}

// add hands a record to the producer; it returns the first failure seen so far, so a
// run stops soon after a record fails.
func (s *sender) add(ctx context.Context, r *sluicev1.Record) error {
	rec := &clients.Record{Topic: s.topic, Key: r.GetKey(), Value: r.GetValue()}
	if r.GetTimestampMs() > 0 {
		rec.Timestamp = timeOf(r.GetTimestampMs())
	}
	for _, h := range r.GetHeaders() {
		rec.Headers = append(rec.Headers, clients.Header{Key: h.GetKey(), Value: h.GetValue()})
	}
	if s.partition >= 0 {
		rec.Partition = s.partition
	}
	s.p.Produce(ctx, rec, s.done)
	return s.firstErr()
}

// done is the promise of every record.
func (s *sender) done(r *clients.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.mu.err == nil {
			s.mu.err = err
		}
		return
	}
	ps := s.mu.parts[r.Partition]
	if ps == nil {
		ps = &PartitionSummary{Partition: r.Partition, FirstOffset: -1, LastOffset: -1}
		s.mu.parts[r.Partition] = ps
	}
	ps.Records++
	if r.Offset >= 0 {
		if ps.FirstOffset < 0 || r.Offset < ps.FirstOffset {
			ps.FirstOffset = r.Offset
		}
		ps.LastOffset = max(ps.LastOffset, r.Offset)
	}
}

func (s *sender) firstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err
}

// close delivers what is buffered and stops the producer.
func (s *sender) close(ctx context.Context) error {
	err := s.p.Flush(ctx)
	if cerr := s.p.Close(); err == nil {
		err = cerr
	}
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
