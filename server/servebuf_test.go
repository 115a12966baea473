package server

import (
	"bytes"
	"testing"
	"weak"

	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func TestSizedPoolClasses(t *testing.T) {
	for _, n := range []int{0, 1, 1 << 16, 1<<16 + 1, 3 << 20, 1 << 27} {
		b := servePool.Get(n)
		if len(*b) != n || cap(*b) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(*b), cap(*b))
		}
		servePool.Put(b)
	}
	if b := servePool.Get(1<<27 + 1); len(*b) != 1<<27+1 {
		t.Fatalf("unpooled Get: len %d", len(*b))
	}
}

// storedBatch returns the stored form of a batch of n records of size bytes.
func storedBatch(t *testing.T, n, size int) []byte {
	t.Helper()
	recs := make([]*sluicev1.Record, n)
	for i := range recs {
		recs[i] = &sluicev1.Record{Value: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
	}
	stored, _, err := batch.Normalize(&sluicev1.RecordBatch{Records: recs}, batch.Limits{MaxBytes: 64 << 20, NowMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// The serving codec marshals a response whose batches alias leased read
// buffers to the bytes proto.Marshal gives, then hands the buffers back,
// for small messages and for ones large enough to use its own pool.
func TestServingCodecMarshalsLeasedResponse(t *testing.T) {
	codec := newServingCodec()
	for _, tc := range []struct{ batches, records, size int }{{1, 1, 10}, {3, 100, 1024}, {8, 200, 1024}} {
		lease := &readLease{}
		resp := &sluicev1.FetchResponse{Topic: "t"}
		fp := &sluicev1.FetchedPartition{Partition: 0, HighWatermark: 99}
		resp.Partitions = append(resp.Partitions, fp)
		stored := storedBatch(t, tc.records, tc.size)
		for i := range tc.batches {
			buf := lease.buf(len(stored))
			n := copy(buf, stored)
			rb, err := batch.Splice(buf[:n], int64(i*tc.records), 1, sluicev1.RecordFormat_RECORD_FORMAT_STORED)
			if err != nil {
				t.Fatal(err)
			}
			fp.Batches = append(fp.Batches, rb)
		}
		want, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		leaseResponse(resp, lease)
		got, err := codec.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want) {
			t.Fatalf("%+v: codec bytes differ from proto.Marshal", tc)
		}
		var back sluicev1.FetchResponse
		if err := codec.Unmarshal(got, &back); err != nil || len(back.GetPartitions()[0].GetBatches()) != tc.batches {
			t.Fatalf("%+v: round trip: %v", tc, err)
		}
		for i, rb := range back.GetPartitions()[0].GetBatches() {
			recs, err := batch.Records(rb)
			if err != nil || len(recs) != tc.records || rb.GetBaseOffset() != int64(i*tc.records) || len(recs[0].GetValue()) != tc.size {
				t.Fatalf("%+v: batch %d: %d records at %d: %v", tc, i, len(recs), rb.GetBaseOffset(), err)
			}
		}
		got.Free()
		if len(lease.bufs) != 0 {
			t.Fatalf("%+v: %d read buffers not handed back", tc, len(lease.bufs))
		}
		if _, ok := leases.Load(weak.Make(resp)); ok {
			t.Fatalf("%+v: lease still registered", tc)
		}
	}
}
