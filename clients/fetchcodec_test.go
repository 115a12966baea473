package clients

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// The fetch codec decodes what proto.Unmarshal decodes, for responses below
// and above its pooling threshold, and a reused buffer leaves no trace of
// an earlier, larger response.
func TestFetchCodecDecodesLikeProto(t *testing.T) {
	codec := fetchCodec{encoding.GetCodecV2("proto")}
	for _, n := range []int{1, 50, 300, 100} { // 300 KiB grows a pooled buffer 100 then reuses
		recs := make([]*sluicev1.Record, n)
		for i := range recs {
			recs[i] = &sluicev1.Record{Value: bytes.Repeat([]byte{byte(n + i)}, 1024), Key: []byte{byte(i)}}
		}
		resp := &sluicev1.FetchResponse{Topic: "t", Partitions: []*sluicev1.FetchedPartition{{
			Partition: 3, HighWatermark: int64(n), Batches: []*sluicev1.RecordBatch{{BaseOffset: 7, Records: recs}}}}}
		wire, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		// Split the bytes as the transport would (frames).
		var data mem.BufferSlice
		for b := wire; len(b) > 0; {
			k := min(len(b), 16<<10)
			data = append(data, mem.SliceBuffer(b[:k]))
			b = b[k:]
		}
		var got sluicev1.FetchResponse
		if err := codec.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, resp) {
			t.Fatalf("%d records: decoded response differs", n)
		}
		var reply fetchReply
		if err := codec.Unmarshal(data, &reply); err != nil || len(reply.badCRC) != 0 {
			t.Fatalf("%d records: fetchReply: %v, %d crc failures", n, err, len(reply.badCRC))
		}
		rb := reply.resp.GetPartitions()[0].GetBatches()[0]
		rs, err := reply.records(rb, "t", 3)
		if err != nil || len(rs) != n {
			t.Fatalf("%d records: fetchReply has %d: %v", n, len(rs), err)
		}
		for i, r := range rs {
			if r.Offset != int64(7+i) || !bytes.Equal(r.Value, recs[i].Value) || !bytes.Equal(r.Key, recs[i].Key) {
				t.Fatalf("%d records: record %d decoded as %+v", n, i, r)
			}
		}
		rb.Records = resp.Partitions[0].Batches[0].Records
		if !proto.Equal(&reply.resp, resp) {
			t.Fatalf("%d records: fetchReply decoded differently", n)
		}
	}
}

func TestDirtyPoolSizes(t *testing.T) {
	for _, n := range []int{0, 1, 256, 257, 16 << 10, 1<<20 + 1, 1 << 27, 1<<27 + 1} {
		b := dirtyPool.Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d): len %d", n, len(*b))
		}
		dirtyPool.Put(b)
		if b := dirtyPool.Get(n); len(*b) != n {
			t.Fatalf("Get(%d) after Put: len %d", n, len(*b))
		}
	}
}

// Frames cut from a chunk have the length asked for and no room beyond it, so nothing
// appended to one can reach the next; large buffers come from dirtyPool.
func TestFramePoolCutsFrames(t *testing.T) {
	var last *[]byte
	for _, n := range []int{1, 16 << 10, 16 << 10, 100, maxChunkFrame, 16 << 10, maxChunkFrame + 1} {
		b := framePool.Get(n)
		if len(*b) != n || cap(*b) != n && n <= maxChunkFrame {
			t.Fatalf("Get(%d): len %d cap %d", n, len(*b), cap(*b))
		}
		for i := range *b {
			(*b)[i] = byte(n)
		}
		if last != nil && len(*last) > 0 && (*last)[0] != byte(len(*last)) {
			t.Fatalf("Get(%d) overwrote the frame before it", n)
		}
		framePool.Put(b)
		last = b
	}
}

// A recycling pool cuts a chunk again once every frame cut from it is back, and never
// while one is out.
func TestRecyclingPoolReusesChunks(t *testing.T) {
	p := newChunkPool(true)
	const n = 16 << 10
	var first []*[]byte
	for range frameChunk / n {
		first = append(first, p.Get(n))
	}
	held := p.Get(n) // cuts a second chunk: the first is retired
	if &(*held)[0] == &(*first[0])[0] {
		t.Fatal("a full chunk was cut again")
	}
	for _, b := range first[1:] {
		p.Put(b)
	}
	fill := func() { // cuts the rest of the current chunk
		for range frameChunk/n - 1 {
			p.Get(n)
		}
	}
	fill()
	if b := p.Get(n); &(*b)[0] == &(*first[0])[0] {
		t.Fatal("a chunk was cut again with a frame still out")
	}
	p.Put(first[0])
	fill()
	if b := p.Get(n); &(*b)[0] != &(*first[0])[0] {
		t.Fatal("a chunk with every frame back was not cut again")
	}
}
