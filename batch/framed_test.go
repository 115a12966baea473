package batch

import (
	"bytes"
	"testing"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func TestNormalizeFramed(t *testing.T) {
	recs := []*sluicev1.Record{
		{Key: []byte("k1"), Value: []byte("v1"), TimestampMs: 1000},
		{Value: bytes.Repeat([]byte("x"), 300)},
	}
	enc, err := Encode(recs, sluicev1.Compression_COMPRESSION_NONE)
	if err != nil {
		t.Fatal(err)
	}
	zstd, err := Encode(recs, sluicev1.Compression_COMPRESSION_ZSTD)
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string]*sluicev1.RecordBatch{
		"records_data": enc,
		"compressed":   zstd,
		"records":      {Records: recs},
	}
	lim := Limits{NowMs: 5000}
	for name, b := range shapes {
		for _, reserve := range []int{0, 1, 62} {
			want, wh, err := Normalize(b, lim)
			if err != nil {
				t.Fatalf("%s: Normalize: %v", name, err)
			}
			framed, h, err := NormalizeFramed(b, lim, reserve)
			if err != nil {
				t.Fatalf("%s reserve %d: %v", name, reserve, err)
			}
			if h != wh {
				t.Errorf("%s reserve %d: header %+v, want %+v", name, reserve, h, wh)
			}
			if len(framed) != reserve+len(want) {
				t.Fatalf("%s reserve %d: %d bytes, want %d", name, reserve, len(framed), reserve+len(want))
			}
			if !bytes.Equal(framed[:reserve], make([]byte, reserve)) {
				t.Errorf("%s reserve %d: reserved bytes not zero: %x", name, reserve, framed[:reserve])
			}
			if !bytes.Equal(framed[reserve:], want) {
				t.Errorf("%s reserve %d: stored form differs from Normalize's", name, reserve)
			}
			if _, err := ParseHeader(framed[reserve:]); err != nil {
				t.Errorf("%s reserve %d: ParseHeader: %v", name, reserve, err)
			}
		}
	}
}
