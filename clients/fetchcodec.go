package clients

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// fetchCodec is grpc's proto codec with one change for large responses: a
// response is gathered into a reused buffer the runtime does not zero
// before it is decoded (grpc's default pool zeroes every buffer above 1 MiB
// it hands out, a second pass over every byte fetched). Decoding copies
// what it keeps, so the buffer goes back to the pool at once.
type fetchCodec struct{ encoding.CodecV2 }

// fetchCall makes a call decode its response with fetchCodec.
var fetchCall = grpc.ForceCodecV2(fetchCodec{encoding.GetCodecV2("proto")})

const (
	minDirtyShift = 16 // 64 KiB
	maxDirtyShift = 27 // 128 MiB
)

// dirtyPools holds power-of-two buffers from 64 KiB to 128 MiB.
var dirtyPools [maxDirtyShift - minDirtyShift + 1]sync.Pool

func (c fetchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	n := data.Len()
	m, ok := v.(proto.Message)
	if !ok || n < 1<<minDirtyShift || n > 1<<maxDirtyShift {
		return c.CodecV2.Unmarshal(data, v)
	}
	class := bits.Len(uint(n-1)) - minDirtyShift
	bp, _ := dirtyPools[class].Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 1<<(class+minDirtyShift))
		bp = &b
	}
	defer dirtyPools[class].Put(bp)
	buf := (*bp)[:n]
	if got := data.CopyTo(buf); got != n {
		return fmt.Errorf("sluice: response of %d bytes copied as %d", n, got)
	}
	return proto.Unmarshal(buf, m)
}
