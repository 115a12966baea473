package batch

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var codecs = []sluicev1.Compression{
	sluicev1.Compression_COMPRESSION_UNSPECIFIED,
	sluicev1.Compression_COMPRESSION_NONE,
	sluicev1.Compression_COMPRESSION_GZIP,
	sluicev1.Compression_COMPRESSION_SNAPPY,
	sluicev1.Compression_COMPRESSION_LZ4,
	sluicev1.Compression_COMPRESSION_ZSTD,
}

func testRecords(n int) []*sluicev1.Record {
	recs := make([]*sluicev1.Record, n)
	for i := range recs {
		r := &sluicev1.Record{
			Value:       bytes.Repeat([]byte{byte('a' + i%26)}, 20+i%50),
			TimestampMs: 1_700_000_000_000 + int64(i),
		}
		if i%3 != 0 {
			r.Key = fmt.Appendf(nil, "key-%d", i)
		}
		if i%4 == 1 {
			r.Headers = []*sluicev1.RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "ünï", Value: nil}}
		}
		recs[i] = r
	}
	return recs
}

func cloneRecords(in []*sluicev1.Record) []*sluicev1.Record {
	out := make([]*sluicev1.Record, len(in))
	for i, r := range in {
		out[i] = proto.Clone(r).(*sluicev1.Record)
	}
	return out
}

// fetched simulates the wire: Splice, marshal as the server's codec does, unmarshal as
// a generated client does.
func fetched(t testing.TB, stored []byte, base int64, f sluicev1.RecordFormat) *sluicev1.RecordBatch {
	t.Helper()
	rb, err := Splice(stored, base, 7, f)
	if err != nil {
		t.Fatalf("Splice: %v", err)
	}
	wire, err := proto.Marshal(&sluicev1.FetchedPartition{Batches: []*sluicev1.RecordBatch{rb}})
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var fp sluicev1.FetchedPartition
	if err := proto.Unmarshal(wire, &fp); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return fp.Batches[0]
}

func TestRoundTripEveryCodec(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			want := testRecords(100)
			b, err := Encode(cloneRecords(want), c)
			if err != nil {
				t.Fatal(err)
			}
			stored, h, err := Normalize(b, Limits{NowMs: 1})
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if h.RecordCount != 100 || h.MaxTimestampMs != want[99].TimestampMs {
				t.Fatalf("header %+v", h)
			}
			ph, err := ParseHeader(stored)
			if err != nil || ph != h {
				t.Fatalf("ParseHeader = %+v, %v; want %+v", ph, err, h)
			}
			for _, f := range []sluicev1.RecordFormat{sluicev1.RecordFormat_RECORD_FORMAT_STORED, sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED} {
				got := fetched(t, stored, 1000, f)
				if got.BaseOffset != 1000 || got.LeaderEpoch != 7 || got.RecordCount != 100 {
					t.Fatalf("%v: batch fields %v", f, got)
				}
				compressed := isCompressed(c) && f == sluicev1.RecordFormat_RECORD_FORMAT_STORED
				if compressed != (len(got.Records) == 0) {
					t.Fatalf("%v: %d plain records, records_data %d bytes", f, len(got.Records), len(got.RecordsData))
				}
				recs, err := Records(got)
				if err != nil {
					t.Fatalf("%v: Records: %v", f, err)
				}
				if diff := diffRecords(want, recs); diff != "" {
					t.Fatalf("%v: records differ %s", f, diff)
				}
			}
		})
	}
}

// An uncompressed stored batch spliced into a RecordBatch reads back, with nothing but
// the generated code, as the records that were produced.
func TestSplicedUncompressedIsPlainRecords(t *testing.T) {
	want := testRecords(10)
	b, err := Encode(cloneRecords(want), sluicev1.Compression_COMPRESSION_NONE)
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := Normalize(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := fetched(t, stored, 42, sluicev1.RecordFormat_RECORD_FORMAT_STORED)
	if len(got.RecordsData) != 0 {
		t.Fatalf("records_data set")
	}
	if diff := diffRecords(want, got.Records); diff != "" {
		t.Fatalf("%s", diff)
	}
	if got.Compression != sluicev1.Compression_COMPRESSION_NONE ||
		got.TimestampType != sluicev1.TimestampType_TIMESTAMP_TYPE_CREATE_TIME ||
		got.Crc != b.Crc || got.ProducerId != 0 {
		t.Fatalf("header fields: %v", got)
	}
}

// A thin client's plain records are stored in the same form, stamped where they carry
// no timestamp.
func TestNormalizeRecordsShape(t *testing.T) {
	in := []*sluicev1.Record{{Key: []byte("k"), Value: []byte("v1")}, {Value: []byte("v2"), TimestampMs: 5}}
	stored, h, err := Normalize(&sluicev1.RecordBatch{Records: in, ProducerId: 9, ProducerEpoch: 1, BaseSequence: 3}, Limits{NowMs: 1234})
	if err != nil {
		t.Fatal(err)
	}
	if h.RecordCount != 2 || h.MaxTimestampMs != 1234 || h.ProducerID != 9 || h.ProducerEpoch != 1 || h.BaseSequence != 3 || h.LastSequence() != 4 {
		t.Fatalf("header %+v", h)
	}
	if in[0].TimestampMs != 0 {
		t.Fatalf("Normalize modified its input")
	}
	got := fetched(t, stored, 0, sluicev1.RecordFormat_RECORD_FORMAT_STORED)
	want := []*sluicev1.Record{{Key: []byte("k"), Value: []byte("v1"), TimestampMs: 1234}, {Value: []byte("v2"), TimestampMs: 5}}
	if diff := diffRecords(want, got.Records); diff != "" {
		t.Fatalf("%s", diff)
	}
	// Same records, produced with a correct crc of the unstamped encoding.
	enc, _ := encodeRecords(nil, in, 0)
	if _, _, err := Normalize(&sluicev1.RecordBatch{Records: in, Crc: CRC(enc)}, Limits{}); err != nil {
		t.Fatalf("with crc: %v", err)
	}
	if _, _, err := Normalize(&sluicev1.RecordBatch{Records: in, Crc: CRC(enc) + 1}, Limits{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad crc: %v", err)
	}
}

func TestLogAppendTime(t *testing.T) {
	b, _ := Encode(testRecords(3), sluicev1.Compression_COMPRESSION_LZ4)
	stored, h, err := Normalize(b, Limits{LogAppendTimeMs: 99})
	if err != nil {
		t.Fatal(err)
	}
	if h.TimestampType != sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME || h.MaxTimestampMs != 99 {
		t.Fatalf("header %+v", h)
	}
	recs, err := Records(fetched(t, stored, 0, sluicev1.RecordFormat_RECORD_FORMAT_STORED))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.TimestampMs != 99 {
			t.Fatalf("record timestamp %d", r.TimestampMs)
		}
	}
}

func TestNormalizeRejects(t *testing.T) {
	good := func() *sluicev1.RecordBatch {
		b, err := Encode(testRecords(5), sluicev1.Compression_COMPRESSION_NONE)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withData := func(data []byte, count int32) *sluicev1.RecordBatch {
		return &sluicev1.RecordBatch{RecordsData: data, RecordCount: count, Crc: CRC(data)}
	}
	rec := func(fields ...[]byte) []byte {
		body := bytes.Join(fields, nil)
		b := protowire.AppendTag(nil, fieldRecords, protowire.BytesType)
		return protowire.AppendBytes(b, body)
	}
	field := func(num protowire.Number, typ protowire.Type, v []byte) []byte {
		b := protowire.AppendTag(nil, num, typ)
		if typ == protowire.BytesType {
			return protowire.AppendBytes(b, v)
		}
		return append(b, v...)
	}
	header := func(k string) []byte {
		return field(recHeaders, protowire.BytesType, field(hdrKey, protowire.BytesType, []byte(k)))
	}
	cases := []struct {
		name string
		b    *sluicev1.RecordBatch
		l    Limits
		want error
	}{
		{"nil", nil, Limits{}, ErrInvalid},
		{"base offset", func() *sluicev1.RecordBatch { b := good(); b.BaseOffset = 1; return b }(), Limits{}, ErrInvalid},
		{"control", func() *sluicev1.RecordBatch { b := good(); b.Control = true; return b }(), Limits{}, ErrInvalid},
		{"codec", func() *sluicev1.RecordBatch { b := good(); b.Compression = 9; return b }(), Limits{}, ErrInvalid},
		{"both shapes", func() *sluicev1.RecordBatch { b := good(); b.Records = testRecords(1); return b }(), Limits{}, ErrInvalid},
		{"no records", &sluicev1.RecordBatch{}, Limits{}, ErrInvalid},
		{"no count", func() *sluicev1.RecordBatch { b := good(); b.RecordCount = 0; return b }(), Limits{}, ErrInvalid},
		{"count", func() *sluicev1.RecordBatch { b := good(); b.RecordCount = 4; return b }(), Limits{}, ErrCorrupt},
		{"crc", func() *sluicev1.RecordBatch { b := good(); b.Crc++; return b }(), Limits{}, ErrCorrupt},
		{"txn without pid", func() *sluicev1.RecordBatch { b := good(); b.Transactional = true; return b }(), Limits{}, ErrInvalid},
		{"negative epoch", func() *sluicev1.RecordBatch { b := good(); b.ProducerId = 3; b.ProducerEpoch = -1; return b }(), Limits{}, ErrInvalid},
		{"unknown record field", withData(rec(field(9, protowire.VarintType, []byte{1})), 1), Limits{}, ErrCorrupt},
		{"wrong wire type", withData(rec(field(recKey, protowire.VarintType, []byte{1})), 1), Limits{}, ErrCorrupt},
		{"bad utf8 header", withData(rec(header("\xff")), 1), Limits{}, ErrCorrupt},
		{"negative ts", withData(rec(field(recTimestamp, protowire.VarintType, protowire.AppendVarint(nil, uint64(1<<64-5)))), 1), Limits{}, ErrCorrupt},
		{"truncated", withData(rec(field(recValue, protowire.BytesType, []byte("abc")))[:4], 1), Limits{}, ErrCorrupt},
		{"not a record", withData(field(fieldRecordCount, protowire.VarintType, []byte{1}), 1), Limits{}, ErrCorrupt},
		{"garbage gzip", func() *sluicev1.RecordBatch {
			b := withData([]byte("not gzip at all"), 1)
			b.Compression = sluicev1.Compression_COMPRESSION_GZIP
			return b
		}(), Limits{}, ErrCorrupt},
		{"plain records ts", &sluicev1.RecordBatch{Records: []*sluicev1.Record{{TimestampMs: -1}}}, Limits{}, ErrInvalid},
		{"nil record", &sluicev1.RecordBatch{Records: []*sluicev1.Record{nil}}, Limits{}, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Normalize(tc.b, tc.l)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	b, _ := Encode(testRecords(100), sluicev1.Compression_COMPRESSION_NONE)
	_, _, err := Normalize(b, Limits{MaxBytes: 1000})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Max != 1000 || tl.Size <= 1000 || tl.Decompressed {
		t.Fatalf("err = %v", err)
	}
}

// A small batch that decompresses to far more than the bound is refused without
// decompressing it all.
func TestDecompressionBomb(t *testing.T) {
	big := &sluicev1.Record{Value: make([]byte, 8<<20)}
	for _, c := range codecs[2:] {
		t.Run(c.String(), func(t *testing.T) {
			b, err := Encode([]*sluicev1.Record{big, big, big, big}, c)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = Normalize(b, Limits{MaxBytes: 1 << 20, MaxDecompressedBytes: 4 << 20})
			var tl *TooLargeError
			if !errors.As(err, &tl) || !tl.Decompressed {
				t.Fatalf("err = %v (batch %d bytes)", err, len(b.RecordsData))
			}
		})
	}
}

func TestRecordsRejectsCorruption(t *testing.T) {
	b, _ := Encode(testRecords(20), sluicev1.Compression_COMPRESSION_ZSTD)
	b.RecordsData[len(b.RecordsData)/2] ^= 1
	if _, err := Records(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
	b.Crc = CRC(b.RecordsData)
	if _, err := Records(b); err == nil {
		t.Fatalf("flipped bit with matching crc accepted")
	}
}

func TestParseHeaderRejects(t *testing.T) {
	b, _ := Encode(testRecords(3), sluicev1.Compression_COMPRESSION_GZIP)
	stored, _, err := Normalize(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range stored {
		if _, err := ParseHeader(stored[:i]); err == nil {
			t.Fatalf("truncated at %d accepted", i)
		}
	}
	if _, err := ParseHeader(append(bytes.Clone(stored), 0)); err == nil {
		t.Fatalf("trailing byte accepted")
	}
}

// Kafka's UtilsTest.testMurmur2 and the values other Kafka-compatible clients check.
func TestMurmur2MatchesKafka(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc":   479470107,
		"1":     -1993445489,
		"12":    126087238,
		"123":   -267702483,
		"1234":  -1614185708,
		"12345": -1188365604,
	}
	for k, want := range cases {
		if got := Murmur2([]byte(k)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", k, got, want)
		}
		// Kafka: Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions
		for _, n := range []int32{1, 3, 7, 12, 100} {
			want := (want & 0x7fffffff) % n
			if got := KeyPartition([]byte(k), n); got != want {
				t.Errorf("KeyPartition(%q, %d) = %d, want %d", k, n, got, want)
			}
		}
	}
	if KeyPartition([]byte("x"), 0) != 0 {
		t.Errorf("0 partitions")
	}
}

func diffRecords(want, got []*sluicev1.Record) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(want[i], got[i]) {
			return fmt.Sprintf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
	return ""
}
