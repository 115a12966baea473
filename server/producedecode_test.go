package server

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func produceDecodeSeeds(f *testing.F) {
	enc, err := batch.Encode([]*sluicev1.Record{{Key: []byte("k"), Value: []byte("v")}, {Value: bytes.Repeat([]byte("x"), 300)}},
		sluicev1.Compression_COMPRESSION_NONE)
	if err != nil {
		f.Fatal(err)
	}
	req := &sluicev1.ProduceRequest{Topic: "t", Partition: proto.Int32(1), Acks: sluicev1.Acks_ACKS_ALL, Batch: enc, TimeoutMs: 5}
	seeds := []proto.Message{
		req,
		&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: 7},
		&sluicev1.ProduceStreamRequest{Request: &sluicev1.ProduceRequest{Topic: "t", Batch: &sluicev1.RecordBatch{
			Records: []*sluicev1.Record{{Value: []byte("a")}}}}},
		&sluicev1.ProduceStreamRequest{},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// records_data twice, batch twice: both left to proto.Unmarshal.
	b, _ := proto.Marshal(req)
	f.Add(append(append([]byte{}, b...), b...))
}

// FuzzUnmarshalProduce checks that the aliasing decoder of produce requests
// gives what proto.Unmarshal gives, error or message, for any input.
func FuzzUnmarshalProduce(f *testing.F) {
	produceDecodeSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got sluicev1.ProduceStreamRequest
		werr := proto.Unmarshal(b, &want)
		gerr := unmarshalProduceStream(append([]byte(nil), b...), &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal: %v, aliasing decoder: %v", werr, gerr)
		}
		if werr == nil && !proto.Equal(&want, &got) {
			t.Fatalf("decoded\n%v\nwant\n%v", &got, &want)
		}
		var wantReq, gotReq sluicev1.ProduceRequest
		werr = proto.Unmarshal(b, &wantReq)
		gerr = unmarshalProduceRequest(append([]byte(nil), b...), &gotReq)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal: %v, aliasing decoder: %v", werr, gerr)
		}
		if werr == nil && !proto.Equal(&wantReq, &gotReq) {
			t.Fatalf("decoded\n%v\nwant\n%v", &gotReq, &wantReq)
		}
	})
}

// TestUnmarshalProduceAliases checks that records_data is not copied.
func TestUnmarshalProduceAliases(t *testing.T) {
	enc, err := batch.Encode([]*sluicev1.Record{{Value: []byte("v")}}, sluicev1.Compression_COMPRESSION_NONE)
	if err != nil {
		t.Fatal(err)
	}
	in := &sluicev1.ProduceStreamRequest{Request: &sluicev1.ProduceRequest{Topic: "t", Batch: enc, TimeoutMs: 9}, CorrelationId: 3}
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var got sluicev1.ProduceStreamRequest
	if err := unmarshalProduceStream(b, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &got) {
		t.Fatalf("decoded %v, want %v", &got, in)
	}
	rd := got.GetRequest().GetBatch().GetRecordsData()
	i := bytes.Index(b, enc.RecordsData)
	if i < 0 || &b[i] != &rd[0] {
		t.Fatal("records_data is a copy, not the received bytes")
	}
	// Through the codec, from a message in several pieces.
	var viaCodec sluicev1.ProduceStreamRequest
	data := mem.BufferSlice{mem.SliceBuffer(b[:5]), mem.SliceBuffer(b[5:])}
	if err := newServingCodec().Unmarshal(data, &viaCodec); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &viaCodec) {
		t.Fatalf("codec decoded %v, want %v", &viaCodec, in)
	}
}

// TestProduceRoomBuildsInPlace checks that a large batch decoded by the codec
// is normalized in the received bytes, once.
func TestProduceRoomBuildsInPlace(t *testing.T) {
	recs := make([]*sluicev1.Record, 8)
	for i := range recs {
		recs[i] = &sluicev1.Record{Value: bytes.Repeat([]byte{byte(i)}, 1024)}
	}
	enc, err := batch.Encode(recs, sluicev1.Compression_COMPRESSION_NONE)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := batch.Normalize(enc, batch.Limits{NowMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&sluicev1.ProduceStreamRequest{Request: &sluicev1.ProduceRequest{Topic: "some-topic", Batch: enc}, CorrelationId: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	var m sluicev1.ProduceStreamRequest
	if err := newServingCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:100]), mem.SliceBuffer(b[100:])}, &m); err != nil {
		t.Fatal(err)
	}
	rb := m.GetRequest().GetBatch()
	room := takeRoom(rb)
	if room == nil {
		t.Fatal("no room kept for a large batch")
	}
	if takeRoom(rb) != nil {
		t.Fatal("room taken twice")
	}
	framed, _, err := batch.NormalizeFramedIn(rb, batch.Limits{NowMs: 1}, 62, room)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(framed[62:], want) || &framed[len(framed)-1] != &rb.RecordsData[len(rb.RecordsData)-1] {
		t.Fatal("not built in place, or built wrong")
	}
	if !bytes.Equal(rb.RecordsData, enc.RecordsData) || m.GetRequest().GetTopic() != "some-topic" || m.GetCorrelationId() != 1<<40 {
		t.Fatal("building in place changed the request")
	}
}
