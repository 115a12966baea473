package server

import (
	"math/bits"
	"runtime"
	"sync"
	"weak"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/storage"
)

// Serving reads without allocating. A Fetch is served with one copy: from
// the file into a read buffer (replication's ReadInto); the response is
// encoded around the stored batches, which it references in the read
// buffers (fetchencode.go), and the transport copies them to the socket.
// Read buffers come from servePool and go back to it once grpc has freed
// every reference, so a fetch of 16 MiB neither allocates nor has the
// runtime zero its buffers (grpc's default pool zeroes buffers larger than
// its largest tier on every Get).
//
// A unary Fetch response is encoded after the handler returns, so its
// read buffers are leased to the response (leaseResponse) and the codec
// hands them to the encoded message. A Consume stream reads into a fresh
// read buffer each time; the batches it sends from it reference it
// (consumeRefs), and it goes back once the stream has read again and grpc
// has freed the messages.

const (
	minPooledShift = 16 // 64 KiB: smaller messages use grpc's own pools
	maxPooledShift = 27 // 128 MiB: larger ones are allocated
	// readSlack is room in a read buffer beyond the byte budget for frame
	// headers and a first batch a little larger than the budget.
	readSlack = 64 << 10
)

// servePool is a mem.BufferPool of power-of-two classes that never zeroes
// a buffer: every user overwrites what it reads back.
//
// Buffers of 1 MiB and more are kept first in a free list of at most
// keptPoolBytes, which the garbage collector does not empty: a sync.Pool
// loses its contents within two collections, and serving a fetch of 16 MiB
// from a freshly allocated (and so zeroed) buffer costs as much as reading
// it. The free list is what a node holds on to between fetches.
type sizedPool struct {
	classes [maxPooledShift - minPooledShift + 1]sync.Pool
	mu      struct {
		sync.Mutex
		free  [maxPooledShift - minPooledShift + 1][]*[]byte
		bytes int
	}
}

const (
	keptPoolShift = 20       // classes of 1 MiB and more use the free list
	keptPoolBytes = 96 << 20 // at most this much sits in the free list
)

var servePool = &sizedPool{}

var _ mem.BufferPool = servePool

func poolClass(n int) (int, bool) {
	if n <= 1<<minPooledShift {
		return 0, true
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxPooledShift {
		return 0, false
	}
	return shift - minPooledShift, true
}

// Get returns a buffer of length n whose contents are arbitrary.
func (sp *sizedPool) Get(n int) *[]byte {
	c, ok := poolClass(n)
	if !ok {
		b := make([]byte, n)
		return &b
	}
	if c+minPooledShift >= keptPoolShift {
		if b := sp.takeKept(c); b != nil {
			*b = (*b)[:n]
			return b
		}
	}
	if v := sp.classes[c].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+minPooledShift))
	return &b
}

// Put returns a buffer Get gave out.
func (sp *sizedPool) Put(b *[]byte) {
	c, ok := poolClass(cap(*b))
	if !ok || cap(*b) != 1<<(c+minPooledShift) {
		return
	}
	if c+minPooledShift >= keptPoolShift && sp.keep(c, b) {
		return
	}
	sp.classes[c].Put(b)
}

// takeKept takes a buffer of class c from the free list (locks sp.mu).
func (sp *sizedPool) takeKept(c int) *[]byte {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	f := sp.mu.free[c]
	if len(f) == 0 {
		return nil
	}
	b := f[len(f)-1]
	f[len(f)-1] = nil
	sp.mu.free[c] = f[:len(f)-1]
	sp.mu.bytes -= cap(*b)
	return b
}

// keep puts b in the free list if there is room (locks sp.mu).
func (sp *sizedPool) keep(c int, b *[]byte) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.mu.bytes+cap(*b) > keptPoolBytes {
		return false
	}
	sp.mu.free[c] = append(sp.mu.free[c], b)
	sp.mu.bytes += cap(*b)
	return true
}

// readLease is the memory a response's batches alias: read buffers and
// the batch slices ReadInto filled.
type readLease struct {
	bufs    []*[]byte
	batches [][]storage.Batch
}

// buf returns a read buffer for a read of up to budget bytes.
func (l *readLease) buf(budget int) []byte {
	b := servePool.Get(budget + readSlack)
	l.bufs = append(l.bufs, b)
	return *b
}

func (l *readLease) release() {
	for _, b := range l.bufs {
		servePool.Put(b)
	}
	l.bufs = l.bufs[:0]
	l.batches = l.batches[:0]
}

// leases maps a Fetch response not yet marshalled to its read buffers. The
// key is weak: a response dropped without being marshalled (the call
// failed after the handler) takes its entry with it and its buffers are
// left to the garbage collector.
var leases sync.Map // weak.Pointer[sluicev1.FetchResponse] -> *readLease

// leaseResponse ties l to resp until the codec has marshalled resp.
func leaseResponse(resp *sluicev1.FetchResponse, l *readLease) {
	if len(l.bufs) == 0 {
		return
	}
	wp := weak.Make(resp)
	leases.Store(wp, l)
	runtime.AddCleanup(resp, func(wp weak.Pointer[sluicev1.FetchResponse]) { leases.Delete(wp) }, wp)
}

// consumeRefs maps a ConsumeResponse being sent to the references to the
// read buffer its batch aliases; the stream sets it around Send, which
// encodes the message before it returns.
var consumeRefs sync.Map // *sluicev1.ConsumeResponse -> *leaseRefs

// servingCodec is grpc's proto codec, with Fetch responses encoded around
// their read buffers and other large messages marshalled into servePool
// buffers.
type servingCodec struct{ encoding.CodecV2 }

func newServingCodec() servingCodec {
	return servingCodec{encoding.GetCodecV2("proto")}
}

// Unmarshal decodes produce requests with their records aliasing the
// received bytes (producedecode.go), other messages as grpc's codec does.
func (c servingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if ok, err := unmarshalProduceMessage(data, v); ok {
		return err
	}
	return c.CodecV2.Unmarshal(data, v)
}

func (c servingCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*sluicev1.FetchResponse); ok {
		var lease *readLease
		if l, ok := leases.LoadAndDelete(weak.Make(r)); ok {
			lease = l.(*readLease)
		}
		return encodeFetchResponse(r, lease) // fetchencode.go
	}
	if r, ok := v.(*sluicev1.ConsumeResponse); ok {
		if refs, ok := consumeRefs.Load(r); ok && r.GetBatch() != nil {
			return encodeConsumeBatch(r, refs.(*leaseRefs)) // fetchencode.go
		}
	}
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	size := proto.Size(m)
	if _, pooled := poolClass(size); !pooled || size < 1<<minPooledShift {
		return c.CodecV2.Marshal(v)
	}
	b := servePool.Get(size)
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend((*b)[:0], m)
	if err != nil {
		servePool.Put(b)
		return nil, err
	}
	*b = out
	return mem.BufferSlice{mem.NewBuffer(b, servePool)}, nil
}
