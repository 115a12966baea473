package clients

import (
	"sync"

	"github.com/sluicehq/sluice/batch"
)

// Reusing batch buffers. A batch's records are encoded into a buffer as large as the
// batch is expected to grow (up to MaxBatchBytes), which the runtime zeroes before a
// record is written to it. Once the node has acknowledged a batch, nothing reads its
// records again — the request was on the wire in full before the node could answer,
// and produceCodec keeps no reference — so its buffer goes to batchBufs and the next
// batch encodes into it. A batch that failed or is retried keeps its buffer.

// minRecycledBuf is the smallest buffer worth keeping.
const minRecycledBuf = 64 << 10

var batchBufs sync.Pool // *[]byte

// recycleBatch gives the records buffer of b, acknowledged, to the next batch. The
// caller is the only one still holding b.
func recycleBatch(b *pbatch) {
	if b.rb == nil || cap(b.rb.RecordsData) < minRecycledBuf {
		return
	}
	buf := b.rb.RecordsData[:0]
	b.rb.RecordsData = nil
	batchBufs.Put(&buf)
}

// growBatch makes room for n bytes of records in bb, in a recycled buffer when one is
// large enough.
func growBatch(bb *batch.Builder, n int) {
	if n >= minRecycledBuf {
		if v, ok := batchBufs.Get().(*[]byte); ok && cap(*v) >= n {
			if bb.Adopt(*v) {
				return
			}
		}
	}
	bb.Grow(n)
}
