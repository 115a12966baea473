package hist

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

const (
	subBits   = 7 // values below 2^subBits are exact
	subCount  = 1 << subBits
	halfCount = subCount / 2
	buckets   = subCount + (64-subBits)*halfCount
)

// Histogram counts non-negative values (typically nanoseconds).
type Histogram struct {
	counts [buckets]uint64
	total  uint64
	sum    float64
	min    uint64
	max    uint64
}

// New returns an empty histogram.
func New() *Histogram { return &Histogram{min: math.MaxUint64} }

func index(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	top := v >> shift                // in [halfCount, subCount)
	return subCount + (shift-1)*halfCount + int(top-halfCount)
}

// lowest and highest value counted in bucket i.
func bounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := (i-subCount)/halfCount + 1
	top := uint64((i-subCount)%halfCount + halfCount)
	return top << shift, (top+1)<<shift - 1
}

// Record counts one value.
func (h *Histogram) Record(v uint64) { h.RecordN(v, 1) }

// RecordN counts the value v n times.
func (h *Histogram) RecordN(v, n uint64) {
	if n == 0 {
		return
	}
	h.counts[index(v)] += n
	h.total += n
	h.sum += float64(v) * float64(n)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// RecordDuration counts a duration in nanoseconds (negative counts as 0).
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(uint64(max(d, 0))) }

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact smallest and largest values (0 when empty).
func (h *Histogram) Min() uint64 {
	if h.total == 0 {
		return 0
	}
	return h.min
}

// Max is the exact largest value recorded.
func (h *Histogram) Max() uint64 { return h.max }

// Mean is the exact mean of the values (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns a value v such that a fraction q (0..1) of the values are at most v,
// to within the bucket resolution; it reports the bucket's upper bound capped at Max.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			_, hi := bounds(i)
			return min(hi, h.max)
		}
	}
	return h.max
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	if o.total > 0 {
		h.min = min(h.min, o.min)
		h.max = max(h.max, o.max)
	}
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{min: math.MaxUint64} }

// Recorder is a Histogram shared by goroutines, with an interval view for progress
// reports.
type Recorder struct {
	mu       sync.Mutex
	total    *Histogram // guarded by mu
	interval *Histogram // guarded by mu; values since the last Interval call
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{total: New(), interval: New()} }

// Record counts one duration.
func (r *Recorder) Record(d time.Duration) { r.RecordN(d, 1) }

// RecordN counts a duration n times (the latency of each record of a batch).
func (r *Recorder) RecordN(d time.Duration, n int) {
	v := uint64(max(d, 0))
	r.mu.Lock()
	r.total.RecordN(v, uint64(n))
	r.interval.RecordN(v, uint64(n))
	r.mu.Unlock()
}

// Interval returns the values recorded since the previous call and starts a new
// interval.
func (r *Recorder) Interval() *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.interval
	r.interval = New()
	return h
}

// Total returns a copy of everything recorded.
func (r *Recorder) Total() *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *r.total
	return &c
}
