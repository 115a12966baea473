package clients

import (
	"sync"

	"google.golang.org/grpc/mem"
)

// Frames from chunks. The frames of a Fetch response never go back to a pool while
// its records may be in use, so each would be an allocation of its own: at 16 KiB (the
// frame size servers send) every one takes a span of its own from the heap, which cost
// more than reading the frame. A chunkPool cuts frames one after another from chunks
// of frameChunk bytes instead.
//
// framePool, shared by consumers, never reuses a chunk: it lives as long as any frame
// cut from it (a record kept for long keeps its chunk, not only its frame). A Consumer
// with ReuseRecordMemory has a pool of its own that recycles: it counts the frames out
// of each chunk, the consumer frees a response's frames once its records may no longer
// be read (the next Poll), and a chunk all of whose frames are back is cut again,
// without being allocated and zeroed anew.
const (
	frameChunk    = 128 << 10
	maxChunkFrame = 64 << 10 // larger buffers come from dirtyPool
	maxFreeChunks = 256      // chunks a recycling pool keeps for reuse (32 MiB)
)

type chunkPool struct {
	recycle bool

	mu struct {
		sync.Mutex
		cur    *chunk
		hdrs   [][]byte           // slice headers handed out as *[]byte, allocated in groups
		frames map[*[]byte]*chunk // recycle: the chunk of each frame out
		free   []*chunk           // recycle: chunks with no frame out
	}
}

// chunk is a buffer frames are cut from, in order.
type chunk struct {
	buf []byte
	off int // bytes cut so far
	out int // recycle: frames cut and not put back
}

var framePool = newChunkPool(false)

var _ mem.BufferPool = framePool

func newChunkPool(recycle bool) *chunkPool {
	p := &chunkPool{recycle: recycle}
	if recycle {
		p.mu.frames = make(map[*[]byte]*chunk)
	}
	return p
}

// Get returns a buffer of length n with arbitrary contents.
func (p *chunkPool) Get(n int) *[]byte {
	if n > maxChunkFrame {
		return dirtyPool.Get(n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.mu.cur
	if c == nil || len(c.buf)-c.off < n {
		if c != nil {
			p.retireLocked(c)
		}
		if k := len(p.mu.free); k > 0 {
			c = p.mu.free[k-1]
			p.mu.free = p.mu.free[:k-1]
			c.off = 0
		} else {
			c = &chunk{buf: make([]byte, frameChunk)}
		}
		p.mu.cur = c
	}
	if len(p.mu.hdrs) == 0 {
		p.mu.hdrs = make([][]byte, 64)
	}
	h := &p.mu.hdrs[0]
	p.mu.hdrs = p.mu.hdrs[1:]
	*h = c.buf[c.off : c.off+n : c.off+n]
	c.off += n
	if p.recycle {
		c.out++
		p.mu.frames[h] = c
	}
	return h
}

// retireLocked takes c, cut to its end, out of cutting: it is kept for reuse once no
// frame of it is out (recycling pools only).
func (p *chunkPool) retireLocked(c *chunk) {
	if p.mu.cur == c {
		p.mu.cur = nil
	}
	if p.recycle && c.out == 0 && len(p.mu.free) < maxFreeChunks {
		p.mu.free = append(p.mu.free, c)
	}
}

// Put takes back a buffer: one from dirtyPool goes back to it. A frame cut from a chunk
// is left to the garbage collector with its chunk, or, in a recycling pool, counted
// back so that its chunk is cut again once all its frames are back.
func (p *chunkPool) Put(b *[]byte) {
	if cap(*b) > maxChunkFrame {
		dirtyPool.Put(b)
		return
	}
	if !p.recycle {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.mu.frames[b]
	if c == nil {
		return
	}
	delete(p.mu.frames, b)
	c.out--
	if c.out == 0 && c != p.mu.cur {
		p.retireLocked(c)
	}
}
