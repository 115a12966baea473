package batch

import (
	"testing"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Grow reserves room without changing what the builder holds, and a grown builder
// appends without reallocating.
func TestBuilderGrow(t *testing.T) {
	var b Builder
	r := &sluicev1.Record{Key: []byte("k"), Value: make([]byte, 100), TimestampMs: 7}
	if err := b.Append(r); err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), b.buf...)
	b.Grow(64 << 10)
	if string(b.buf) != string(before) || cap(b.buf)-len(b.buf) < 64<<10 {
		t.Fatalf("grow changed the records or reserved too little: len %d cap %d", len(b.buf), cap(b.buf))
	}
	allocs := testing.AllocsPerRun(1, func() {
		for range 100 {
			if err := b.Append(r); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("appends into a grown builder allocated %v times", allocs)
	}
	rb, err := b.Finish(sluicev1.Compression_COMPRESSION_NONE)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Records(rb)
	if err != nil || len(got) != 201 || !proto.Equal(got[0], r) {
		t.Fatalf("records after grow: %d %v", len(got), err)
	}
}
