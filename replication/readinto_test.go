package replication

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluicehq/sluice/storage"
)

// ReadInto returns the bytes Read returns, from every offset and with any
// budget, reusing the caller's memory, and never reads past the high
// watermark.
func TestReadIntoMatchesRead(t *testing.T) {
	c := newTestCluster(t, 1, false)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	for i := 0; i < 30; i++ {
		b := testBatch(i)
		b.Records = uint32(i%4 + 1)
		if _, err := p.Produce(ctx, b, AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	hw := p.HighWatermark()
	buf := make([]byte, 4096)
	var dst []storage.Batch
	for off := uint64(0); off < hw; off++ {
		for _, budget := range []int{1, 40, 1 << 20} {
			want, err := p.Read(off, budget)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.ReadInto(dst, buf, off, budget)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("offset %d budget %d: %d batches, want %d (> 0)", off, budget, len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.BaseOffset != w.BaseOffset || g.Records != w.Records || g.Term != w.Term || !bytes.Equal(g.Data, w.Data) {
					t.Fatalf("offset %d budget %d batch %d: %+v, want %+v", off, budget, i, g, w)
				}
				if g.BaseOffset+uint64(g.Records) > hw {
					t.Fatalf("batch %d ends at %d past the high watermark %d", i, g.BaseOffset+uint64(g.Records), hw)
				}
			}
			dst = got
		}
	}
	if bs, err := p.ReadInto(dst, buf, hw, 1<<20); err != nil || len(bs) != 0 {
		t.Fatalf("read at hw: %v %v", bs, err)
	}
	var oor *storage.OffsetOutOfRangeError
	if _, err := p.ReadInto(dst, buf, hw+1, 1<<20); !errors.As(err, &oor) || oor.End != hw {
		t.Fatalf("read past hw: %v", err)
	}
}
