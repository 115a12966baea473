package batch

import (
	"fmt"
	"testing"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// batchOf builds a ~16 KiB batch of records with valueSize-byte values.
func batchOf(b *testing.B, valueSize int, c sluicev1.Compression) *sluicev1.RecordBatch {
	var recs []*sluicev1.Record
	for size := 0; size < 16<<10; {
		r := &sluicev1.Record{Key: fmt.Appendf(nil, "key-%d", len(recs)), Value: make([]byte, valueSize), TimestampMs: 1_700_000_000_000}
		for i := range r.Value {
			r.Value[i] = byte(i*7 + len(recs))
		}
		recs = append(recs, r)
		size += RecordSize(r)
	}
	rb, err := Encode(recs, c)
	if err != nil {
		b.Fatal(err)
	}
	return rb
}

// BenchmarkNormalize measures the server's validation of the smart-client shape on
// 16 KiB batches. allocs/op stays the same whatever the number of records: the stored
// bytes are the one allocation (zstd adds its decoder's constant few).
func BenchmarkNormalize(b *testing.B) {
	for _, c := range codecs[1:] {
		for _, vs := range []int{10, 100, 1000} {
			rb := batchOf(b, vs, c)
			b.Run(fmt.Sprintf("%s/records=%d", c, rb.RecordCount), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(16 << 10)
				for b.Loop() {
					if _, _, err := Normalize(rb, Limits{NowMs: 1}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkRecords(b *testing.B) {
	for _, c := range codecs[1:] {
		rb := batchOf(b, 100, c)
		b.Run(c.String(), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(16 << 10)
			for b.Loop() {
				if _, err := Records(rb); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
