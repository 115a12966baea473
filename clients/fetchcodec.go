package clients

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Reading fast: a fetched byte is copied from the socket into a frame buffer, and the
// records of a Fetch response alias the frame buffers (decodeFetchRecords). grpc's
// default buffer pool zeroes every buffer it hands out again; the consumer's
// connections read frames into framePool buffers instead (cut from chunks, see below;
// larger ones from dirtyPool, never zeroed again), whose contents are always
// overwritten before they are read. The frames of a Fetch response never go back to a
// pool: its records own them, and the garbage collector frees them with the last
// record.

// fetchCodec is grpc's proto codec, except that it decodes a *fetchReply with
// decodeFetchResponse.
type fetchCodec struct{ encoding.CodecV2 }

// fetchCall makes a call decode its response with fetchCodec.
var fetchCall = grpc.ForceCodecV2(fetchCodec{encoding.GetCodecV2("proto")})

// readPool makes a connection read frames into framePool buffers (framepool.go).
var readPool = experimental.WithBufferPool(framePool)

// fetchReply is a Fetch response as fetchCodec decodes it (decodeFetchRecords): the
// plain records of its batches are in plain, aliasing the response's frames, and badCRC
// lists the batches whose records fail their CRC.
type fetchReply struct {
	resp   sluicev1.FetchResponse
	plain  map[*sluicev1.RecordBatch][]Record
	badCRC []*sluicev1.RecordBatch
	frames mem.BufferSlice // the response's frames, referenced until release
}

// release gives the response's frames back to their pool: nothing may read its records
// afterwards. Only a consumer with ReuseRecordMemory releases a reply; otherwise the
// records own their frames.
func (r *fetchReply) release() {
	r.frames.Free()
	r.frames = nil
}

func (c fetchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*fetchReply)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	segs := make([][]byte, len(data))
	for i, b := range data {
		// grpc frees data once Unmarshal returns; this reference is freed only by
		// release, so the frame lives as long as its records (or until the consumer
		// says they are done with).
		b.Ref()
		segs[i] = b.ReadOnlyData()
	}
	r.frames = append(mem.BufferSlice(nil), data...)
	plain, bad, err := decodeFetchRecords(segs, &r.resp)
	r.plain, r.badCRC = plain, bad
	return err
}

const (
	minDirtyShift = 8  // 256 B
	maxDirtyShift = 27 // 128 MiB
)

// sizedDirtyPool is a mem.BufferPool of power-of-two buffers that never zeroes them.
type sizedDirtyPool struct {
	classes [maxDirtyShift - minDirtyShift + 1]sync.Pool
}

var dirtyPool = &sizedDirtyPool{}

var _ mem.BufferPool = dirtyPool

func dirtyClass(n int) (int, bool) {
	if n <= 1<<minDirtyShift {
		return 0, true
	}
	shift := bits.Len(uint(n - 1))
	return shift - minDirtyShift, shift <= maxDirtyShift
}

// Get returns a buffer of length n with arbitrary contents.
func (p *sizedDirtyPool) Get(n int) *[]byte {
	c, ok := dirtyClass(n)
	if !ok {
		b := make([]byte, n)
		return &b
	}
	if v, _ := p.classes[c].Get().(*[]byte); v != nil {
		*v = (*v)[:n]
		return v
	}
	b := make([]byte, n, 1<<(c+minDirtyShift))
	return &b
}

// Put takes back a buffer Get returned.
func (p *sizedDirtyPool) Put(b *[]byte) {
	if c, ok := dirtyClass(cap(*b)); ok && cap(*b) == 1<<(c+minDirtyShift) {
		p.classes[c].Put(b)
	}
}
