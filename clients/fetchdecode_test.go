package clients

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// servedResponse builds a FetchResponse the way a node serves one: batches encoded by a
// producer, normalized into the stored form and spliced.
func servedResponse(t testing.TB, c sluicev1.Compression, batches, records int) []byte {
	t.Helper()
	resp := &sluicev1.FetchResponse{Topic: "orders", Partitions: []*sluicev1.FetchedPartition{
		{Partition: 0, HighWatermark: 10, LastStableOffset: 10, LogStartOffset: 0},
		{Partition: 1, HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, Error: &sluicev1.Error{
			Code: 9, Reason: sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE, Message: "out of range",
			Metadata: map[string]string{"earliest": "0", "latest": "10"}}},
	}}
	for i := range batches {
		recs := make([]*sluicev1.Record, records)
		for j := range recs {
			recs[j] = &sluicev1.Record{Key: []byte{byte(j)}, Value: bytes.Repeat([]byte{byte(i + j)}, 40+j),
				TimestampMs: int64(1000 + j)}
			if j%3 == 1 {
				recs[j].Headers = []*sluicev1.RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "e"}}
			}
		}
		resp.Partitions[0].Batches = append(resp.Partitions[0].Batches, servedBatch(t, recs, c, int64(i*records)))
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aliasIn checks that v aliases b, with no room past its end an append could write
// into, and returns where it starts in b.
func aliasIn(t *testing.T, b, v []byte) int {
	t.Helper()
	if cap(v) != len(v) {
		t.Fatalf("value cap %d, len %d: an append would write into the response", cap(v), len(v))
	}
	i := bytes.Index(b, v)
	if i < 0 || &b[i] != &v[0] {
		t.Fatal("value does not alias the response buffer")
	}
	return i
}

// servedBatch is recs as a node serves them from base: encoded by a producer with c,
// normalized into the stored form and spliced.
func servedBatch(t testing.TB, recs []*sluicev1.Record, c sluicev1.Compression, base int64) *sluicev1.RecordBatch {
	t.Helper()
	rb, err := batch.Encode(recs, c)
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := batch.Normalize(rb, batch.Limits{MaxBytes: 4 << 20, NowMs: 5000})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := batch.Splice(stored, base, 3, sluicev1.RecordFormat_RECORD_FORMAT_STORED)
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// checkLikeProto decodes b with decodeFetchResponse and with proto.Unmarshal: both fail,
// or both succeed with equal messages.
// The bytes are decoded whole and split into segments of several sizes, as frames
// split them.
func checkLikeProto(t *testing.T, b []byte) []*sluicev1.RecordBatch {
	t.Helper()
	var want sluicev1.FetchResponse
	werr := proto.Unmarshal(b, &want)
	var bad []*sluicev1.RecordBatch
	for _, size := range []int{len(b), 1, 3, 7, 64} {
		var got sluicev1.FetchResponse
		gotBad, gerr := decodeFetchResponse(split(b, size), &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("segments of %d: proto.Unmarshal: %v, decodeFetchResponse: %v", size, werr, gerr)
		}
		if werr == nil && !proto.Equal(&got, &want) {
			t.Fatalf("segments of %d: decoded differently:\n got %v\nwant %v", size, &got, &want)
		}
		if size != len(b) && len(gotBad) != len(bad) {
			t.Fatalf("segments of %d: %d crc failures, whole %d", size, len(gotBad), len(bad))
		}
		bad = gotBad
	}
	return bad
}

// split cuts b into segments of size bytes (the last one shorter).
func split(b []byte, size int) [][]byte {
	var segs [][]byte
	for size > 0 && len(b) > 0 {
		k := min(size, len(b))
		segs = append(segs, b[:k:k])
		b = b[k:]
	}
	return segs
}

func fetchSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		{},
		servedResponse(t, sluicev1.Compression_COMPRESSION_NONE, 0, 0),
		servedResponse(t, sluicev1.Compression_COMPRESSION_NONE, 2, 5),
		servedResponse(t, sluicev1.Compression_COMPRESSION_ZSTD, 2, 5),
		servedResponse(t, sluicev1.Compression_COMPRESSION_LZ4, 1, 3),
	}
	// Unknown fields at every level, a known field of the wrong wire type, repeated
	// scalars (last one wins), a group.
	var odd []byte
	odd = protowire.AppendTag(odd, 1, protowire.VarintType) // topic as varint: unknown
	odd = protowire.AppendVarint(odd, 7)
	odd = protowire.AppendTag(odd, 99, protowire.StartGroupType)
	odd = protowire.AppendTag(odd, 1, protowire.Fixed64Type)
	odd = protowire.AppendFixed64(odd, 1)
	odd = protowire.AppendTag(odd, 99, protowire.EndGroupType)
	var rec []byte
	rec = protowire.AppendTag(rec, 2, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("first"))
	rec = protowire.AppendTag(rec, 2, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("second"))
	rec = protowire.AppendTag(rec, 4, protowire.Fixed32Type) // timestamp as fixed32: unknown
	rec = protowire.AppendFixed32(rec, 5)
	var rb []byte
	rb = protowire.AppendTag(rb, 1, protowire.VarintType)
	rb = protowire.AppendVarint(rb, 1)
	rb = protowire.AppendTag(rb, 15, protowire.BytesType)
	rb = protowire.AppendBytes(rb, rec)
	rb = protowire.AppendTag(rb, 1, protowire.VarintType)
	rb = protowire.AppendVarint(rb, 2)
	rb = protowire.AppendTag(rb, 11, protowire.Fixed32Type)
	rb = protowire.AppendFixed32(rb, 0)
	rb = protowire.AppendTag(rb, 13, protowire.BytesType)
	rb = protowire.AppendBytes(rb, []byte("x"))
	var fp []byte
	fp = protowire.AppendTag(fp, 2, protowire.BytesType)
	fp = protowire.AppendBytes(fp, rb)
	fp = protowire.AppendTag(fp, 6, protowire.BytesType)
	fp = protowire.AppendBytes(fp, []byte{0x08, 0x05})
	fp = protowire.AppendTag(fp, 6, protowire.BytesType)
	fp = protowire.AppendBytes(fp, []byte{0x10, 0x02})
	odd = protowire.AppendTag(odd, 2, protowire.BytesType)
	odd = protowire.AppendBytes(odd, fp)
	return append(seeds, odd)
}

func TestDecodeFetchResponseLikeProto(t *testing.T) {
	for _, s := range fetchSeeds(t) {
		if bad := checkLikeProto(t, s); len(bad) != 0 {
			t.Fatalf("%d batches fail their crc in a served response", len(bad))
		}
		// Every truncation, too.
		for n := range s {
			checkLikeProto(t, s[:n])
		}
	}
}

// A flipped byte in a record's value is caught by the batch CRC; the values alias the
// response buffer.
func TestDecodeFetchResponseCRCAndAliasing(t *testing.T) {
	b := servedResponse(t, sluicev1.Compression_COMPRESSION_NONE, 2, 5)
	var resp sluicev1.FetchResponse
	bad, err := decodeFetchResponse([][]byte{b}, &resp)
	if err != nil || len(bad) != 0 {
		t.Fatalf("decode: %v, %d bad", err, len(bad))
	}
	v := resp.Partitions[0].Batches[1].Records[4].Value
	i := aliasIn(t, b, v)
	b[i] ^= 0xff
	var again sluicev1.FetchResponse
	bad, err = decodeFetchResponse(split(b, 100), &again)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0] != again.Partitions[0].Batches[1] {
		t.Fatalf("crc failures %v, want batch 1", bad)
	}
}

// FuzzDecodeFetchResponse: the aliasing decoder accepts exactly what proto.Unmarshal
// accepts and decodes it to an equal message.
func FuzzDecodeFetchResponse(f *testing.F) {
	for _, s := range fetchSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkLikeProto(t, b)
	})
}
