package clients

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Reading fast: a fetched byte is copied from the socket into a frame buffer, gathered
// into one buffer for decoding, and copied once more into the record it belongs to. grpc's
// default buffer pool zeroes every buffer it hands out, a pass over every byte fetched
// before each of the first two copies; the consumer's connections and fetch responses
// use dirtyPool instead, whose buffers are always overwritten before they are read.

// fetchCodec is grpc's proto codec, except that a large response is gathered into a
// dirtyPool buffer. Decoding copies what it keeps, so the buffer goes back at once.
type fetchCodec struct{ encoding.CodecV2 }

// fetchCall makes a call decode its response with fetchCodec.
var fetchCall = grpc.ForceCodecV2(fetchCodec{encoding.GetCodecV2("proto")})

// readPool makes a connection read frames into dirtyPool buffers.
var readPool = experimental.WithBufferPool(dirtyPool)

func (c fetchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	n := data.Len()
	m, ok := v.(proto.Message)
	if !ok || n < 64<<10 {
		return c.CodecV2.Unmarshal(data, v)
	}
	bp := dirtyPool.Get(n)
	defer dirtyPool.Put(bp)
	if got := data.CopyTo(*bp); got != n {
		return fmt.Errorf("sluice: response of %d bytes copied as %d", n, got)
	}
	return proto.Unmarshal(*bp, m)
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
