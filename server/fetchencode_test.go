package server

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// randomFetchResponse builds a response of a random shape: no partitions, partitions
// with errors, empty ones, batches small and large, compressed and plain, spliced or
// with fields of their own, unknown fields at each level.
func randomFetchResponse(t *testing.T, r *rand.Rand, lease *readLease) *sluicev1.FetchResponse {
	resp := &sluicev1.FetchResponse{}
	if r.IntN(4) > 0 {
		resp.Topic = "topic-" + string(rune('a'+r.IntN(26)))
	}
	if r.IntN(8) == 0 {
		resp.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 77, protowire.VarintType), 5))
	}
	for range r.IntN(5) {
		fp := &sluicev1.FetchedPartition{Partition: int32(r.IntN(8)) - 1, HighWatermark: int64(r.IntN(1000)) - 1,
			LastStableOffset: int64(r.IntN(3)) - 1, LogStartOffset: int64(r.IntN(1 << 40))}
		resp.Partitions = append(resp.Partitions, fp)
		switch r.IntN(5) {
		case 0: // an error instead of batches
			fp.Error = &sluicev1.Error{Code: int32(r.IntN(16)), Reason: sluicev1.ErrorReason(r.IntN(10)), Message: "no",
				Metadata: map[string]string{"leader": "2"}}
			continue
		case 1:
			continue // nothing yet
		}
		if r.IntN(8) == 0 {
			fp.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 40, protowire.BytesType), []byte("u")))
		}
		for i := range r.IntN(4) {
			recs, size := 1+r.IntN(30), r.IntN(2000)
			comp := sluicev1.Compression_COMPRESSION_NONE
			if r.IntN(3) == 0 {
				comp = sluicev1.Compression_COMPRESSION_LZ4
			}
			stored := storedBatchCompressed(t, recs, size, comp)
			var rb *sluicev1.RecordBatch
			switch r.IntN(4) {
			case 0: // a batch of its own fields (a forwarded response)
				rb = &sluicev1.RecordBatch{BaseOffset: int64(i), RecordCount: int32(recs), Compression: comp,
					TimestampType: 1, MaxTimestampMs: -5, ProducerId: 9, ProducerEpoch: -1, BaseSequence: 3,
					Transactional: true, Control: r.IntN(2) == 0, Crc: r.Uint32(), LeaderEpoch: 4}
				if r.IntN(2) == 0 {
					rb.RecordsData = bytes.Repeat([]byte{7}, size)
				} else {
					rb.Records = []*sluicev1.Record{{Key: []byte("k"), Value: []byte("v"), TimestampMs: 3,
						Headers: []*sluicev1.RecordHeader{{Key: "h"}}}, {}}
				}
			default:
				buf := lease.buf(len(stored))
				n := copy(buf, stored)
				var err error
				rb, err = batch.Splice(buf[:n], int64(r.IntN(1<<20)), int64(r.IntN(3)), sluicev1.RecordFormat_RECORD_FORMAT_STORED)
				if err != nil {
					t.Fatal(err)
				}
			}
			fp.Batches = append(fp.Batches, rb)
		}
	}
	return resp
}

func storedBatchCompressed(t *testing.T, n, size int, c sluicev1.Compression) []byte {
	t.Helper()
	recs := make([]*sluicev1.Record, n)
	for i := range recs {
		recs[i] = &sluicev1.Record{Key: []byte{byte(i)}, Value: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
	}
	rb, err := batch.Encode(recs, c)
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := batch.Normalize(rb, batch.Limits{MaxBytes: 64 << 20, NowMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// The hand-encoded response is byte for byte what proto.Marshal gives, for many shapes,
// the stored bytes are referenced rather than copied, and the read buffers go back only
// once every reference is freed.
func TestEncodeFetchResponseLikeProto(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	for i := range 500 {
		lease := &readLease{}
		resp := randomFetchResponse(t, r, lease)
		want, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		bufs := len(lease.bufs)
		got, err := encodeFetchResponse(resp, lease)
		if err != nil {
			t.Fatal(err)
		}
		if g := got.Materialize(); !bytes.Equal(g, want) {
			var back sluicev1.FetchResponse
			err := proto.Unmarshal(g, &back)
			t.Fatalf("shape %d: %d bytes, proto.Marshal %d; unmarshal: %v, equal %v", i, len(g), len(want), err, proto.Equal(&back, resp))
		}
		// Every stored batch of more than 1 KiB is a reference into its read buffer.
		referenced := 0
		for _, fp := range resp.Partitions {
			for _, rb := range fp.Batches {
				u := rb.ProtoReflect().GetUnknown()
				if len(u) <= 1024 {
					continue
				}
				referenced++
				found := false
				for _, b := range got {
					if d := b.ReadOnlyData(); len(d) == len(u) && &d[0] == &u[0] {
						found = true
					}
				}
				if !found {
					t.Fatalf("shape %d: a stored batch of %d bytes was copied", i, len(u))
				}
			}
		}
		if referenced > 0 && len(lease.bufs) != bufs {
			t.Fatalf("shape %d: read buffers handed back before the message was freed", i)
		}
		got.Free()
		if len(lease.bufs) != 0 {
			t.Fatalf("shape %d: %d read buffers not handed back after Free", i, len(lease.bufs))
		}
	}
}

func TestEncodeFetchResponseRejectsBadTopic(t *testing.T) {
	resp := &sluicev1.FetchResponse{Topic: "\xff"}
	if _, err := proto.Marshal(resp); err == nil {
		t.Fatal("proto.Marshal accepted invalid UTF-8")
	}
	if _, err := encodeFetchResponse(resp, nil); err == nil {
		t.Fatal("encodeFetchResponse accepted invalid UTF-8")
	}
}

// A Consume stream's batch message is byte for byte what proto.Marshal gives, and the
// read buffer goes back only when the stream has dropped it and grpc has freed every
// message referencing it.
func TestEncodeConsumeBatchLikeProto(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	for i := range 200 {
		lease := &readLease{}
		refs := newLeaseRefs(lease)
		var sent []mem.BufferSlice
		for range 1 + r.IntN(4) {
			comp := sluicev1.Compression_COMPRESSION_NONE
			if r.IntN(3) == 0 {
				comp = sluicev1.Compression_COMPRESSION_ZSTD
			}
			stored := storedBatchCompressed(t, 1+r.IntN(20), r.IntN(3000), comp)
			buf := lease.buf(len(stored))
			n := copy(buf, stored)
			rb, err := batch.Splice(buf[:n], int64(r.IntN(1<<30)), int64(r.IntN(4)), sluicev1.RecordFormat_RECORD_FORMAT_STORED)
			if err != nil {
				t.Fatal(err)
			}
			cb := &sluicev1.ConsumedBatch{Partition: int32(r.IntN(6)) - 1, Batch: rb, HighWatermark: int64(r.IntN(1 << 20))}
			if r.IntN(5) > 0 {
				cb.Topic = "t"
			}
			m := &sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_Batch{Batch: cb}}
			want, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeConsumeBatch(m, refs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Materialize(), want) {
				t.Fatalf("message %d: bytes differ from proto.Marshal", i)
			}
			sent = append(sent, got)
		}
		refs.Put(nil) // the stream reads again
		for j, m := range sent {
			for _, later := range sent[j:] {
				if referencesOthers(later) && len(lease.bufs) == 0 {
					t.Fatalf("message %d: read buffer handed back while a message still references it", i)
				}
			}
			m.Free()
		}
		if len(lease.bufs) != 0 {
			t.Fatalf("message %d: read buffer not handed back", i)
		}
	}
}

// referencesOthers reports whether s holds a counted reference (not a plain slice).
func referencesOthers(s mem.BufferSlice) bool {
	for _, b := range s {
		if _, plain := b.(mem.SliceBuffer); !plain {
			return true
		}
	}
	return false
}
