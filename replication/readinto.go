package replication

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/storage"
)

// ReadInto is Read into caller-supplied memory (storage's Log.ReadInto):
// the batches are appended to dst[:0] and their data read into buf as long
// as it has room, so a reader that keeps its buffers serves a partition
// with one copy (file to buf) and no allocation. Batch.Data aliases buf
// (the command header stripped): the caller must not reuse buf while it
// uses the batches. Bounds and errors are those of Read.
func (p *Partition) ReadInto(dst []storage.Batch, buf []byte, offset uint64, maxBytes int) ([]storage.Batch, error) {
	return p.readCommitted(offset, dst[:0], func(hw uint64) ([]storage.Batch, error) {
		if r, ok := p.log.(intoReader); ok {
			return r.ReadInto(dst, buf, offset, hw, maxBytes)
		}
		return p.log.Read(offset, hw, maxBytes) // a test's log substitute
	})
}

// readCommitted reads batches from offset up to the high watermark with
// read (given the high watermark) and strips their command headers; empty
// is what a read at the high watermark returns.
func (p *Partition) readCommitted(offset uint64, empty []storage.Batch, read func(hw uint64) ([]storage.Batch, error)) ([]storage.Batch, error) {
	p.mu.Lock()
	hw, start, closed := p.mu.hw, p.mu.start, p.mu.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if offset > hw || offset < start {
		return nil, &storage.OffsetOutOfRangeError{Offset: offset, Start: start, End: hw}
	}
	if offset == hw {
		return empty, nil
	}
	bs, err := read(hw)
	if err != nil {
		var oor *storage.OffsetOutOfRangeError
		if errors.As(err, &oor) && oor.End > hw {
			oor.End = hw
		}
		return nil, err
	}
	out := bs[:0]
	for _, b := range bs {
		if b.BaseOffset >= hw {
			break
		}
		c, ok, err := decodeCommand(b.Data)
		if err != nil || !ok || c.Type != cmdRecords {
			return nil, fmt.Errorf("replication: partition %d offset %d: %w", p.id, b.BaseOffset, errBadCommand)
		}
		b.Data = c.Batch
		out = append(out, b)
	}
	return out, nil
}

// intoReader is the caller-buffer read of *storage.Log; substitutes of the
// log in tests may lack it.
type intoReader interface {
	ReadInto(dst []storage.Batch, buf []byte, offset, maxOffset uint64, maxBytes int) ([]storage.Batch, error)
}

var _ intoReader = (*storage.Log)(nil)
