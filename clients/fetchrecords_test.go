package clients

import (
	"bytes"
	"hash/crc32"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// checkRecordsLikeProto decodes b with decodeFetchRecords and with decodeFetchResponse
// (itself checked against proto.Unmarshal): both fail, or both succeed with equal
// responses apart from the batches' plain records, and every batch gives the same
// records (or the same error) through batchRecords. The bytes are decoded whole and
// split into segments of several sizes, as frames split them.
func checkRecordsLikeProto(t *testing.T, b []byte) {
	t.Helper()
	for _, size := range []int{len(b), 1, 3, 7, 64} {
		segs := split(b, size)
		var want sluicev1.FetchResponse
		wantBad, werr := decodeFetchResponse(segs, &want)
		var got sluicev1.FetchResponse
		plain, gotBad, gerr := decodeFetchRecords(segs, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("segments of %d: decodeFetchResponse: %v, decodeFetchRecords: %v", size, werr, gerr)
		}
		if werr != nil {
			continue
		}
		stripped := proto.Clone(&want).(*sluicev1.FetchResponse)
		for _, fp := range stripped.GetPartitions() {
			for _, rb := range fp.GetBatches() {
				rb.Records = nil
			}
		}
		if !proto.Equal(stripped, &got) {
			t.Fatalf("segments of %d: decoded differently:\n got %v\nwant %v", size, &got, stripped)
		}
		if len(gotBad) != len(wantBad) || len(gotBad) != refBadCRC(b) {
			t.Fatalf("segments of %d: %d crc failures, want %d (reference %d)", size, len(gotBad), len(wantBad), refBadCRC(b))
		}
		for i, fp := range want.GetPartitions() {
			for j, wb := range fp.GetBatches() {
				gb := got.GetPartitions()[i].GetBatches()[j]
				if len(plain[gb]) != len(wb.GetRecords()) {
					t.Fatalf("segments of %d: batch %d/%d: %d plain records, want %d", size, i, j, len(plain[gb]), len(wb.GetRecords()))
				}
				wr, werr := batchRecords(wb, nil, slices.Contains(wantBad, wb), "t", fp.GetPartition())
				gr, gerr := batchRecords(gb, plain[gb], slices.Contains(gotBad, gb), "t", fp.GetPartition())
				if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
					t.Fatalf("segments of %d: batch %d/%d: error %v, want %v", size, i, j, gerr, werr)
				}
				if !reflect.DeepEqual(wr, gr) {
					t.Fatalf("segments of %d: batch %d/%d: records\n got %+v\nwant %+v", size, i, j, gr, wr)
				}
			}
		}
	}
}

// refBadCRC counts the batches of a valid FetchResponse encoding whose plain records
// (their field-15 entries, as on the wire) do not match a non-zero crc: the CRC check
// written plainly over contiguous bytes.
func refBadCRC(resp []byte) int {
	bad := 0
	fields := func(b []byte, f func(num protowire.Number, typ protowire.Type, field, value []byte)) {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if n < 0 || m < 0 {
				return
			}
			v := b[n : n+m]
			if typ == protowire.BytesType {
				v, _ = protowire.ConsumeBytes(v)
			}
			f(num, typ, b[:n+m], v)
			b = b[n+m:]
		}
	}
	fields(resp, func(num protowire.Number, typ protowire.Type, _, fp []byte) {
		if num != 2 || typ != protowire.BytesType {
			return
		}
		fields(fp, func(num protowire.Number, typ protowire.Type, _, rb []byte) {
			if num != 2 || typ != protowire.BytesType {
				return
			}
			var crc, want uint32
			records := 0
			fields(rb, func(num protowire.Number, typ protowire.Type, field, v []byte) {
				switch {
				case num == 15 && typ == protowire.BytesType:
					crc = crc32.Update(crc, castagnoli, field)
					records++
				case num == 11 && typ == protowire.Fixed32Type:
					want, _ = protowire.ConsumeFixed32(field[1:])
				}
			})
			if want != 0 && records > 0 && crc != want {
				bad++
			}
		})
	})
	return bad
}

// recordsSeeds are responses with what batchRecords treats specially: log-append time,
// records without a timestamp, a record_count that does not match, records together
// with records_data, a CRC that does not match.
func recordsSeeds(t testing.TB) [][]byte {
	rec := func(key, value string, ts int64, headers ...*sluicev1.RecordHeader) *sluicev1.Record {
		return &sluicev1.Record{Key: []byte(key), Value: []byte(value), TimestampMs: ts, Headers: headers}
	}
	resp := &sluicev1.FetchResponse{Topic: "t", Partitions: []*sluicev1.FetchedPartition{{Partition: 2, Batches: []*sluicev1.RecordBatch{
		{BaseOffset: 10, LeaderEpoch: 4, RecordCount: 2, TimestampType: sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME, MaxTimestampMs: 77,
			Records: []*sluicev1.Record{rec("a", "1", 5), rec("", "", 0, &sluicev1.RecordHeader{Key: "k", Value: []byte("v")}, &sluicev1.RecordHeader{Key: "e"})}},
		{BaseOffset: 12, RecordCount: 2, MaxTimestampMs: 99, Records: []*sluicev1.Record{rec("b", "2", 0), rec("c", "3", -3)}},
		{BaseOffset: 14, RecordCount: 3, Records: []*sluicev1.Record{rec("d", "4", 1)}},
		{BaseOffset: 15, RecordsData: []byte("x"), Records: []*sluicev1.Record{rec("e", "5", 1)}},
		{BaseOffset: 16, Crc: 12345, Records: []*sluicev1.Record{rec("f", "6", 1)}},
	}}}}
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{b}
}

func TestDecodeFetchRecordsLikeProto(t *testing.T) {
	for _, s := range append(fetchSeeds(t), recordsSeeds(t)...) {
		checkRecordsLikeProto(t, s)
		for n := range s { // every truncation, too
			checkRecordsLikeProto(t, s[:n])
		}
	}
}

// The records alias the response; a flipped byte fails the batch's CRC.
func TestDecodeFetchRecordsAliasingAndCRC(t *testing.T) {
	b := servedResponse(t, sluicev1.Compression_COMPRESSION_NONE, 2, 5)
	var resp sluicev1.FetchResponse
	plain, bad, err := decodeFetchRecords([][]byte{b}, &resp)
	if err != nil || len(bad) != 0 {
		t.Fatalf("decode: %v, %d bad", err, len(bad))
	}
	rb := resp.Partitions[0].Batches[1]
	if len(rb.Records) != 0 || len(plain[rb]) != 5 {
		t.Fatalf("batch has %d records, %d plain; want 0 and 5", len(rb.Records), len(plain[rb]))
	}
	v := plain[rb][4].Value
	i := aliasIn(t, b, v)
	b[i] ^= 0xff
	var again sluicev1.FetchResponse
	_, bad, err = decodeFetchRecords(split(b, 100), &again)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0] != again.Partitions[0].Batches[1] {
		t.Fatalf("crc failures %v, want batch 1", bad)
	}
	if _, err := batchRecords(bad[0], nil, true, "t", 0); err == nil {
		t.Fatal("batchRecords accepted a batch that failed its crc")
	}
}

// FuzzDecodeFetchRecords: decoding records straight into Records accepts exactly what
// the proto-shaped decoder accepts and yields the same records.
func FuzzDecodeFetchRecords(f *testing.F) {
	for _, s := range append(fetchSeeds(f), recordsSeeds(f)...) {
		f.Add(s)
	}
	// A record split by unknown fields and repeated fields.
	var rec []byte
	rec = protowire.AppendTag(rec, 1, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("k"))
	rec = protowire.AppendTag(rec, 9, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 3)
	rec = protowire.AppendTag(rec, 4, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 8)
	rec = protowire.AppendTag(rec, 4, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 0)
	var rb []byte
	rb = protowire.AppendTag(rb, 15, protowire.BytesType)
	rb = protowire.AppendBytes(rb, rec)
	rb = protowire.AppendTag(rb, 5, protowire.VarintType)
	rb = protowire.AppendVarint(rb, 42)
	var fp []byte
	fp = protowire.AppendTag(fp, 2, protowire.BytesType)
	fp = protowire.AppendBytes(fp, rb)
	var resp []byte
	resp = protowire.AppendTag(resp, 2, protowire.BytesType)
	f.Add(protowire.AppendBytes(resp, fp))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRecordsLikeProto(t, b)
	})
}

// BenchmarkFetchRecords decodes a 16 MiB response of 1 KiB records, in 16 KiB segments as
// the transport receives it, into the Records a Poll returns: "proto" through
// sluicev1.Records (decodeFetchResponse), "direct" straight into Records
// (decodeFetchRecords).
func BenchmarkFetchRecords(b *testing.B) {
	const records, batches = 1000, 16
	resp := &sluicev1.FetchResponse{Topic: "t", Partitions: []*sluicev1.FetchedPartition{{Partition: 1}}}
	value := bytes.Repeat([]byte("v"), 1024)
	for i := range batches {
		recs := make([]*sluicev1.Record, records)
		for j := range recs {
			recs[j] = &sluicev1.Record{Value: value, TimestampMs: 1700000000000}
		}
		resp.Partitions[0].Batches = append(resp.Partitions[0].Batches,
			servedBatch(b, recs, sluicev1.Compression_COMPRESSION_NONE, int64(i*records)))
	}
	wire, err := proto.Marshal(resp)
	if err != nil {
		b.Fatal(err)
	}
	segs := split(wire, 16<<10)
	run := func(b *testing.B, decode func() int) {
		b.SetBytes(int64(len(wire)))
		b.ReportAllocs()
		for b.Loop() {
			if n := decode(); n != records*batches {
				b.Fatalf("%d records", n)
			}
		}
	}
	b.Run("proto", func(b *testing.B) {
		run(b, func() int {
			var m sluicev1.FetchResponse
			bad, err := decodeFetchResponse(segs, &m)
			if err != nil {
				b.Fatal(err)
			}
			var out []*Record
			for _, rb := range m.Partitions[0].Batches {
				rs, err := batchRecords(rb, nil, slices.Contains(bad, rb), "t", 1)
				if err != nil {
					b.Fatal(err)
				}
				for i := range rs {
					out = append(out, &rs[i])
				}
			}
			return len(out)
		})
	})
	b.Run("direct", func(b *testing.B) {
		run(b, func() int {
			var m sluicev1.FetchResponse
			plain, bad, err := decodeFetchRecords(segs, &m)
			if err != nil {
				b.Fatal(err)
			}
			var out []*Record
			for _, rb := range m.Partitions[0].Batches {
				rs, err := batchRecords(rb, plain[rb], slices.Contains(bad, rb), "t", 1)
				if err != nil {
					b.Fatal(err)
				}
				for i := range rs {
					out = append(out, &rs[i])
				}
			}
			return len(out)
		})
	})
}
