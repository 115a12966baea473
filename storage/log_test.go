package storage

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluicehq/sluice/storage/faultfs"
)

func TestAppendReadReopen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		segBytes int64
		size     int
		n        int
	}{
		{"one segment", 1 << 20, 100, 50},
		{"many segments", 1 << 10, 100, 200},
		{"entries larger than segments", 256, 700, 20},
		{"direct writes", 1 << 20, directWriteMin + 10, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := faultfs.New()
			o := memOpts(fs)
			o.SegmentBytes = tc.segBytes
			l := mustOpen(t, "/d", o)
			var want []Entry
			var off uint64
			offs := map[uint64]uint64{}
			for i := 1; i <= tc.n; i++ {
				e := batchEntry(uint64(i), 1, uint32(i%3), int64(i*10), tc.size)
				if i%5 == 0 {
					e.Records, e.Data = 0, nil // a Raft empty entry
				}
				offs[e.Index] = off
				off += uint64(e.Records)
				want = append(want, e)
				mustAppend(t, l, e)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			check := func(l *Log) {
				t.Helper()
				if got := l.NextOffset(); got != off {
					t.Fatalf("next offset %d, want %d", got, off)
				}
				ents, err := l.Entries(1, uint64(tc.n+1), 1<<62)
				if err != nil {
					t.Fatal(err)
				}
				if len(ents) != tc.n {
					t.Fatalf("got %d entries, want %d", len(ents), tc.n)
				}
				for i, e := range ents {
					if e.GetIndex() != want[i].Index || e.GetTerm() != 1 {
						t.Fatalf("entry %d: got index %d term %d", i, e.GetIndex(), e.GetTerm())
					}
					checkEntry(t, e.GetData(), want[i])
				}
				for _, w := range want {
					if got := must[uint64](t)(l.OffsetAt(w.Index)); got != offs[w.Index] {
						t.Fatalf("OffsetAt(%d) = %d, want %d", w.Index, got, offs[w.Index])
					}
				}
				// Read every offset one batch at a time.
				for o := uint64(0); o < off; {
					bs, err := l.Read(o, off, 1)
					if err != nil {
						t.Fatalf("read %d: %v", o, err)
					}
					if len(bs) != 1 {
						t.Fatalf("read %d: %d batches", o, len(bs))
					}
					b := bs[0]
					if b.BaseOffset != o || b.BaseOffset != offs[b.Index] {
						t.Fatalf("read %d: base %d index %d", o, b.BaseOffset, b.Index)
					}
					checkEntry(t, b.Data, want[b.Index-1])
					o = b.NextOffset()
				}
				all, err := l.Read(0, off, 1<<30)
				if err != nil {
					t.Fatal(err)
				}
				var recs uint64
				for _, b := range all {
					recs += uint64(b.Records)
				}
				if recs != off {
					t.Fatalf("read all: %d records, want %d", recs, off)
				}
			}
			check(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, "/d", o)
			defer l.Close()
			check(l)
		})
	}
}

func TestTruncateSuffix(t *testing.T) {
	fs := faultfs.New()
	l := mustOpen(t, "/d", memOpts(fs))
	for i := uint64(1); i <= 100; i++ {
		mustAppend(t, l, batchEntry(i, 1, 2, int64(i), 60))
	}
	// Overwrite from 40 with a new term: offsets continue from entry 40's.
	mustAppend(t, l, batchEntry(40, 2, 5, 1000, 30), batchEntry(41, 2, 5, 1001, 30))
	if got := must[uint64](t)(l.LastIndex()); got != 41 {
		t.Fatalf("last %d", got)
	}
	if got := l.NextOffset(); got != 39*2+10 {
		t.Fatalf("next offset %d", got)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = mustOpen(t, "/d", memOpts(fs))
	defer l.Close()
	if got := l.NextOffset(); got != 39*2+10 {
		t.Fatalf("next offset after reopen %d", got)
	}
	if tm := must[uint64](t)(l.Term(40)); tm != 2 {
		t.Fatalf("term(40) = %d", tm)
	}
	if tm := must[uint64](t)(l.Term(39)); tm != 1 {
		t.Fatalf("term(39) = %d", tm)
	}
	off, ok, err := l.OffsetForTime(1000)
	if err != nil || !ok || off != 78 {
		t.Fatalf("OffsetForTime(1000) = %d %v %v", off, ok, err)
	}
	if err := l.Append([]Entry{batchEntry(43, 2, 1, 0, 1)}); !errors.Is(err, ErrNotContiguous) {
		t.Fatalf("gap: %v", err)
	}
	if err := l.Append([]Entry{batchEntry(42, 1, 1, 0, 1)}); err == nil {
		t.Fatal("term regression accepted")
	}
}

// TestAppendCacheCopiesUnlessRetained: by default the cache holds a copy of
// appended data, so a caller reusing its buffer cannot change what Entries
// returns; with RetainData it holds the caller's bytes themselves.
func TestAppendCacheCopiesUnlessRetained(t *testing.T) {
	for _, retain := range []bool{false, true} {
		t.Run(map[bool]string{false: "copy", true: "retain"}[retain], func(t *testing.T) {
			o := memOpts(faultfs.New())
			o.CacheBytes = 1 << 20
			o.RetainData = retain
			l := mustOpen(t, "/d", o)
			e1 := batchEntry(1, 1, 2, 10, 300)
			e2 := batchEntry(2, 1, 2, 20, 500)
			orig := [][]byte{append([]byte(nil), e1.Data...), append([]byte(nil), e2.Data...)}
			if err := l.Append([]Entry{e1, e2}); err != nil {
				t.Fatal(err)
			}
			ents, err := l.Entries(1, 3, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range []Entry{e1, e2} {
				got := ents[i].GetData()
				if !bytes.Equal(got, orig[i]) {
					t.Fatalf("entry %d: cached data differs from what was appended", i+1)
				}
				if shared := &got[0] == &e.Data[0]; shared != retain {
					t.Fatalf("entry %d: cache shares the appended bytes: %v, want %v", i+1, shared, retain)
				}
				if cap(got) != len(got) {
					t.Fatalf("entry %d: cached data has spare capacity %d: an append to it could write past it", i+1, cap(got)-len(got))
				}
			}
		})
	}
}
