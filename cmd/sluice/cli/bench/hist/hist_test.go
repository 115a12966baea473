package hist

import (
	"math/rand/v2"
	"sort"
	"testing"
)

func TestIndexBoundsRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1<<63 + 12345, ^uint64(0)} {
		i := index(v)
		if i < 0 || i >= buckets {
			t.Fatalf("index(%d) = %d out of range", v, i)
		}
		lo, hi := bounds(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d with bounds [%d, %d]", v, i, lo, hi)
		}
		if lo > 0 && float64(hi-lo)/float64(lo) > 1.0/64+1e-9 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/64", i, lo, hi)
		}
	}
}

func TestQuantilesMatchSortedValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := New()
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(r.ExpFloat64() * 1e6)
		h.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/64+1 {
			t.Errorf("q%.3f = %d, exact %d", q, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("min/max = %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
}

func TestMergeAndEmpty(t *testing.T) {
	a, b := New(), New()
	if a.Quantile(0.5) != 0 || a.Mean() != 0 || a.Min() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	for i := uint64(1); i <= 100; i++ {
		a.Record(i)
		b.Record(i + 100)
	}
	a.Merge(b)
	if a.Count() != 200 || a.Min() != 1 || a.Max() != 200 || a.Quantile(0.5) != 100 {
		t.Fatalf("merged: count %d min %d max %d p50 %d", a.Count(), a.Min(), a.Max(), a.Quantile(0.5))
	}
}
