package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/storage/faultfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func memOpts(fs *faultfs.FS) Options {
	return Options{FS: fs, SegmentBytes: 1 << 10, IndexIntervalBytes: 128, CacheBytes: 1 << 10}
}

func mustOpen(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// payload is deterministic data for entry i.
func payload(i uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(i, uint64(n)))
	for k := range b {
		b[k] = byte(r.Uint32())
	}
	return b
}

// batchEntry is a record batch entry at index i with records records.
func batchEntry(i, term uint64, records uint32, ts int64, size int) Entry {
	return Entry{Index: i, Term: term, Records: records, MaxTimestamp: ts, Data: payload(i, size)}
}

func mustAppend(t testing.TB, l *Log, ents ...Entry) {
	t.Helper()
	if err := l.Append(ents); err != nil {
		t.Fatalf("append %d..: %v", ents[0].Index, err)
	}
}

func checkEntry(t testing.TB, got []byte, want Entry) {
	t.Helper()
	if !bytes.Equal(got, want.Data) {
		t.Fatalf("entry %d: data differs (%d vs %d bytes)", want.Index, len(got), len(want.Data))
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func name(format string, a ...any) string { return fmt.Sprintf(format, a...) }
