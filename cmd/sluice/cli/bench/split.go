package bench

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sluicehq/sluice/cmd/sluice/cli/bench/hist"
)

// split divides the end-to-end latency of each record into the part before
// the producer's acknowledgement and the part after it: the first is the
// produce path (batching, replication, fsync), the second the read path
// (the high watermark moving, the consumer learning of it, delivery).
// Records are matched by their send time, which travels in their value.
type split struct {
	mu struct {
		sync.Mutex
		ackAt  map[int64]time.Time // send time -> ack time, until read
		readAt map[int64]time.Time // send time -> read time, until acked
		ack    *hist.Histogram     // send -> ack
		after  *hist.Histogram     // ack -> read (records read after their ack)
		early  uint64              // records read before their ack arrived
	}
}

func newSplit() *split {
	s := &split{}
	s.mu.ackAt = map[int64]time.Time{}
	s.mu.readAt = map[int64]time.Time{}
	s.mu.ack, s.mu.after = hist.New(), hist.New()
	return s
}

func (s *split) acked(sent int64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.ack.RecordDuration(at.Sub(time.Unix(0, sent)))
	if _, ok := s.mu.readAt[sent]; ok {
		delete(s.mu.readAt, sent)
		s.mu.early++
		return
	}
	s.mu.ackAt[sent] = at
}

func (s *split) read(sent int64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.mu.ackAt[sent]; ok {
		delete(s.mu.ackAt, sent)
		s.mu.after.RecordDuration(at.Sub(a))
		return
	}
	s.mu.readAt[sent] = at
}

func (s *split) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := func(ns uint64) float64 { return float64(ns) / 1e6 }
	a, r := s.mu.ack, s.mu.after
	fmt.Fprintf(w, "  produce->ack ms: p50 %.2f  p99 %.2f  max %.2f\n", ms(a.Quantile(0.5)), ms(a.Quantile(0.99)), ms(a.Max()))
	fmt.Fprintf(w, "  ack->read ms:    p50 %.2f  p99 %.2f  max %.2f  (%d records read after their ack, %d before)\n",
		ms(r.Quantile(0.5)), ms(r.Quantile(0.99)), ms(r.Max()), r.Count(), s.mu.early)
}
