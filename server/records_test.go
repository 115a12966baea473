package server_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func sameRecords(t *testing.T, got, want []*sluicev1.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.GetKey(), w.GetKey()) || !bytes.Equal(g.GetValue(), w.GetValue()) || len(g.GetHeaders()) != len(w.GetHeaders()) {
			t.Fatalf("record %d: got %v want %v", i, g, w)
		}
		for j := range w.GetHeaders() {
			if g.GetHeaders()[j].GetKey() != w.GetHeaders()[j].GetKey() || !bytes.Equal(g.GetHeaders()[j].GetValue(), w.GetHeaders()[j].GetValue()) {
				t.Fatalf("record %d header %d: %v", i, j, g.GetHeaders()[j])
			}
		}
		if w.GetTimestampMs() != 0 && g.GetTimestampMs() != w.GetTimestampMs() {
			t.Fatalf("record %d: timestamp %d, want %d", i, g.GetTimestampMs(), w.GetTimestampMs())
		}
	}
}

func TestEveryCodecRoundTrips(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "codecs", 1, nil)
	codecs := []sluicev1.Compression{
		sluicev1.Compression_COMPRESSION_NONE, sluicev1.Compression_COMPRESSION_GZIP, sluicev1.Compression_COMPRESSION_SNAPPY,
		sluicev1.Compression_COMPRESSION_LZ4, sluicev1.Compression_COMPRESSION_ZSTD,
	}
	sent := map[int64][]*sluicev1.Record{}
	for i, c := range codecs {
		recs := records(20, c.String())
		for j, r := range recs {
			r.TimestampMs = 1_700_000_000_000 + int64(i*100+j)
			r.Value = bytes.Repeat(r.Value, 10) // compressible
		}
		b, err := batch.Encode(recs, c)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := n.Producer.Produce(ctxT(t), &sluicev1.ProduceRequest{Topic: "codecs", Partition: proto.Int32(0), Batch: b})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		sent[resp.GetBaseOffset()] = recs
	}
	for _, format := range []sluicev1.RecordFormat{sluicev1.RecordFormat_RECORD_FORMAT_STORED, sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED} {
		bs := fetchAll(t, n, "codecs", 0, 0, format)
		if len(bs) != len(codecs) {
			t.Fatalf("%s: %d batches", format, len(bs))
		}
		for i, b := range bs {
			c := codecs[i]
			if format == sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED || c == sluicev1.Compression_COMPRESSION_NONE {
				if len(b.GetRecords()) == 0 || len(b.GetRecordsData()) != 0 {
					t.Fatalf("%s %s: want plain records", format, c)
				}
			} else if len(b.GetRecordsData()) == 0 || b.GetCompression() != c {
				t.Fatalf("%s %s: want records_data as sent (compression %s)", format, c, b.GetCompression())
			}
			if b.GetTimestampType() != sluicev1.TimestampType_TIMESTAMP_TYPE_CREATE_TIME {
				t.Fatalf("timestamp type %s", b.GetTimestampType())
			}
			got, err := batch.Records(b)
			if err != nil {
				t.Fatalf("%s %s: %v", format, c, err)
			}
			sameRecords(t, got, sent[b.GetBaseOffset()])
			if b.GetMaxTimestampMs() != sent[b.GetBaseOffset()][19].GetTimestampMs() {
				t.Fatalf("max timestamp %d", b.GetMaxTimestampMs())
			}
		}
	}
}

func TestKeysGoWhereMurmur2Says(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "keyed", 6, nil)
	for i := range 40 {
		key := []byte(fmt.Sprintf("user-%d", i))
		resp, err := n.Producer.Produce(ctxT(t), &sluicev1.ProduceRequest{Topic: "keyed",
			Batch: &sluicev1.RecordBatch{Records: []*sluicev1.Record{{Key: key, Value: []byte("v")}}}})
		if err != nil {
			t.Fatal(err)
		}
		if want := batch.KeyPartition(key, 6); resp.GetPartition() != want {
			t.Fatalf("key %s went to %d, murmur2 says %d", key, resp.GetPartition(), want)
		}
	}
	// Also for the encoded shape.
	b, err := batch.Encode([]*sluicev1.Record{{Key: []byte("encoded"), Value: []byte("v")}}, sluicev1.Compression_COMPRESSION_LZ4)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := n.Producer.Produce(ctxT(t), &sluicev1.ProduceRequest{Topic: "keyed", Batch: b})
	if err != nil {
		t.Fatal(err)
	}
	if want := batch.KeyPartition([]byte("encoded"), 6); resp.GetPartition() != want {
		t.Fatalf("encoded batch went to %d, want %d", resp.GetPartition(), want)
	}
	// Without keys, batches are spread round robin.
	seen := map[int32]bool{}
	for range 12 {
		resp, err := n.Producer.Produce(ctxT(t), &sluicev1.ProduceRequest{Topic: "keyed",
			Batch: &sluicev1.RecordBatch{Records: []*sluicev1.Record{{Value: []byte("v")}}}})
		if err != nil {
			t.Fatal(err)
		}
		seen[resp.GetPartition()] = true
	}
	if len(seen) != 6 {
		t.Fatalf("keyless batches reached only partitions %v", seen)
	}
}

func TestLogAppendTime(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "lat", 1, map[string]string{"message.timestamp.type": "LogAppendTime"})
	before := time.Now().UnixMilli()
	recs := records(2, "x")
	recs[0].TimestampMs = 42
	resp := produce(t, n, "lat", 0, recs)
	if resp.GetLogAppendTimeMs() < before {
		t.Fatalf("log append time %d, before %d", resp.GetLogAppendTimeMs(), before)
	}
	bs := fetchAll(t, n, "lat", 0, 0, 0)
	if len(bs) != 1 || bs[0].GetTimestampType() != sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME ||
		bs[0].GetMaxTimestampMs() != resp.GetLogAppendTimeMs() {
		t.Fatalf("batch %v, response %v", bs, resp)
	}
}

func TestListOffsetsByTime(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "times", 1, nil)
	for i := range int64(5) {
		recs := records(2, fmt.Sprint(i))
		recs[0].TimestampMs = 1000 + i*100
		recs[1].TimestampMs = 1050 + i*100
		produce(t, n, "times", 0, recs)
	}
	lookup := func(spec *sluicev1.OffsetSpec) *sluicev1.PartitionOffset {
		resp, err := n.Admin.ListOffsets(ctxT(t), &sluicev1.ListOffsetsRequest{Topic: "times", Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetOffsets()[0]
	}
	ts := func(ms int64) *sluicev1.OffsetSpec {
		return &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_TimestampMs{TimestampMs: ms}}
	}
	cases := []struct {
		spec       *sluicev1.OffsetSpec
		off, maxTS int64
	}{
		{ts(0), 0, 1050},
		{ts(1050), 0, 1050},
		{ts(1051), 2, 1150},
		{ts(1300), 6, 1350},
		{ts(1451), -1, -1},
		{&sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}}, 0, -1},
		{&sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}, 10, -1},
		{nil, 10, -1},
	}
	for _, c := range cases {
		po := lookup(c.spec)
		if po.GetOffset() != c.off || po.GetTimestampMs() != c.maxTS || po.GetHighWatermark() != 10 || po.GetError() != nil {
			t.Errorf("%v: got %v, want offset %d ts %d", c.spec, po, c.off, c.maxTS)
		}
	}
}

func TestFetchByteLimits(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "lim", 2, nil)
	for p := range int32(2) {
		for range 5 {
			produce(t, n, "lim", p, records(10, "l"))
		}
	}
	one := fetchAll(t, n, "lim", 0, 0, 0)
	size := int32(proto.Size(one[0])) // about the stored size of each batch
	fetch := func(maxBytes, partMax int32) []int {
		resp, err := n.Consumer.Fetch(ctxT(t), &sluicev1.FetchRequest{Topic: "lim", MaxBytes: maxBytes, PartitionMaxBytes: partMax,
			Partitions: []*sluicev1.FetchPosition{{Partition: 0}, {Partition: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		return []int{len(resp.GetPartitions()[0].GetBatches()), len(resp.GetPartitions()[1].GetBatches())}
	}
	if got := fetch(0, 0); got[0] != 5 || got[1] != 5 {
		t.Fatalf("defaults: %v", got)
	}
	// Tiny limits still return one batch per partition that fits overall.
	if got := fetch(1, 1); got[0] != 1 || got[1] != 0 {
		t.Fatalf("max_bytes 1: %v", got)
	}
	if got := fetch(10*size, 1); got[0] != 1 || got[1] != 1 {
		t.Fatalf("partition_max_bytes 1: %v", got)
	}
	// Limits are in stored bytes; the log's own framing may make a read
	// stop a batch early, never late.
	if got := fetch(0, 2*size+size/2); got[0] < 1 || got[0] > 2 || got[1] < 1 || got[1] > 2 {
		t.Fatalf("partition_max_bytes 2.5 batches: %v", got)
	}
	if got := fetch(3*size+size/2, 0); got[0] < 1 || got[0]+got[1] > 3 || got[0]+got[1] < 2 {
		t.Fatalf("max_bytes 3.5 batches: %v", got)
	}
}
