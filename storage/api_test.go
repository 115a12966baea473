package storage

import (
	"errors"
	"sync"
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/sluicehq/sluice/storage/faultfs"
)

func TestErrors(t *testing.T) {
	fs := faultfs.New()
	l := mustOpen(t, "/e", memOpts(fs))
	for i := uint64(1); i <= 10; i++ {
		mustAppend(t, l, batchEntry(i, 1, 2, int64(i), 10))
	}
	var re *OffsetOutOfRangeError
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"entries beyond last", func() error { _, err := l.Entries(5, 12, 100); return err }(), ErrOutOfBounds},
		{"term beyond last", func() error { _, err := l.Term(11); return err }(), raft.ErrUnavailable},
		{"offset of index beyond last+1", func() error { _, err := l.OffsetAt(12); return err }(), ErrOutOfBounds},
		{"gap", l.Append([]Entry{batchEntry(12, 1, 1, 0, 1)}), ErrNotContiguous},
		{"not contiguous", l.Append([]Entry{batchEntry(11, 1, 1, 0, 1), batchEntry(13, 1, 1, 0, 1)}), ErrNotContiguous},
		{"snapshot beyond last", l.CreateSnapshot(11, nil, nil), ErrOutOfBounds},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if _, err := l.Read(21, 30, 10); !errors.As(err, &re) || re.Offset != 21 || re.Start != 0 || re.End != 20 {
		t.Fatalf("read past end: %v", err)
	}
	if bs, err := l.Read(20, 30, 10); err != nil || len(bs) != 0 {
		t.Fatalf("read at end: %v %v", bs, err)
	}
	if bs, err := l.Read(5, 5, 10); err != nil || len(bs) != 0 {
		t.Fatalf("empty range: %v %v", bs, err)
	}
	if bs, err := l.Read(5, 30, 0); err != nil || len(bs) != 1 || bs[0].BaseOffset != 4 {
		t.Fatalf("read inside a batch: %+v %v", bs, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	for name, err := range map[string]error{
		"append":  l.Append([]Entry{batchEntry(11, 1, 1, 0, 1)}),
		"sync":    l.Sync(),
		"entries": func() error { _, err := l.Entries(1, 2, 10); return err }(),
		"read":    func() error { _, err := l.Read(0, 1, 10); return err }(),
		"term":    func() error { _, err := l.Term(1); return err }(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v", name, err)
		}
	}
}

// TestConcurrentWritersAndSyncs appends, truncates and rolls while other
// goroutines Sync the same logs through a shared group. Run with -race.
func TestConcurrentWritersAndSyncs(t *testing.T) {
	fs := faultfs.New()
	g := NewSyncGroup(WithSyncParallelism(3))
	defer g.Close()
	var wg sync.WaitGroup
	for p := range 4 {
		l := mustOpen(t, name("/cw/%d", p), Options{FS: fs, SegmentBytes: 700, Syncer: g, CacheBytes: 300})
		defer l.Close()
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.Sync(); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			defer close(stop)
			term := uint64(1)
			last := uint64(0)
			for i := 0; i < 300; i++ {
				at := last + 1
				if i%17 == 16 && last > 5 {
					at = last - 3
					term++
				}
				es := []Entry{batchEntry(at, term, 1, int64(i), 40), batchEntry(at+1, term, 2, int64(i), 80)}
				if err := l.Append(es); err != nil {
					t.Error(err)
					return
				}
				last = at + 1
			}
			if err := l.Sync(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
