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

// readPool makes a connection read frames into framePool buffers.
var readPool = experimental.WithBufferPool(framePool)

// fetchReply is a Fetch response as fetchCodec decodes it (decodeFetchRecords): the
// plain records of its batches are in plain, aliasing the response's frames, and badCRC
// lists the batches whose records fail their CRC.
type fetchReply struct {
	resp   sluicev1.FetchResponse
	plain  map[*sluicev1.RecordBatch][]Record
	badCRC []*sluicev1.RecordBatch
}

func (c fetchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*fetchReply)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	segs := make([][]byte, len(data))
	for i, b := range data {
		// grpc frees data once Unmarshal returns; this reference is never freed, so
		// the frame never goes back to its pool and lives as long as its records.
		b.Ref()
		segs[i] = b.ReadOnlyData()
	}
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

// Frames from chunks. The frames of a Fetch response never go back to a pool, so each
// would be an allocation of its own: at 16 KiB (the frame size servers send) every one
// takes a span of its own from the heap, which cost more than reading the frame.
// framePool cuts frames one after another from chunks of frameChunk bytes instead. A
// chunk lives as long as any frame cut from it: a record kept for long keeps its
// chunk, not only its frame.
const (
	frameChunk    = 128 << 10
	maxChunkFrame = 64 << 10 // larger buffers come from dirtyPool
)

type chunkPool struct {
	mu    sync.Mutex
	chunk []byte   // the rest of the current chunk
	hdrs  [][]byte // slice headers handed out as *[]byte, allocated in groups
}

var framePool = &chunkPool{}

var _ mem.BufferPool = framePool

// Get returns a buffer of length n with arbitrary contents.
func (p *chunkPool) Get(n int) *[]byte {
	if n > maxChunkFrame {
		return dirtyPool.Get(n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.chunk) < n {
		p.chunk = make([]byte, frameChunk)
	}
	if len(p.hdrs) == 0 {
		p.hdrs = make([][]byte, 64)
	}
	h := &p.hdrs[0]
	p.hdrs = p.hdrs[1:]
	*h = p.chunk[:n:n]
	p.chunk = p.chunk[n:]
	return h
}

// Put takes back a buffer: one from dirtyPool goes back to it; a frame cut from a chunk
// is left to the garbage collector with its chunk.
func (p *chunkPool) Put(b *[]byte) {
	if cap(*b) > maxChunkFrame {
		dirtyPool.Put(b)
	}
}
