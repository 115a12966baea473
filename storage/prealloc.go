package storage

import (
	"errors"

	"github.com/sluicehq/sluice/storage/vfs"
)

// preallocKeepSize makes preallocation keep the file's size
// (FALLOC_FL_KEEP_SIZE) instead of extending it with zeros. Measured no
// faster for a flush of many logs and slower for one (perf.md); a variable
// for benchmarks and tests.
var preallocKeepSize = false

// reserveLocked preallocates the active segment's blocks up to at least
// end (the end of a write about to happen), PreallocateBytes ahead, not
// past SegmentBytes unless the write goes there. An fdatasync of a write
// into preallocated blocks skips the block allocation and, since the size
// does not change, the file size update. Failing to preallocate never
// fails a write: the log stops preallocating (silently when the
// filesystem cannot, with a warning otherwise) and writes as before.
func (l *Log) reserveLocked(a *segment, end int64) {
	if l.opts.PreallocateBytes <= 0 {
		return
	}
	if l.mu.zeroAhead && !l.mu.noZeros {
		if zw, ok := a.f.(vfs.ZeroWriter); ok {
			l.zeroAheadLocked(a, zw, end)
			return
		}
	}
	if l.mu.noPrealloc || end <= a.alloc {
		return
	}
	p, ok := a.f.(vfs.Preallocator)
	if !ok {
		l.mu.noPrealloc = true
		return
	}
	from := max(a.alloc, a.size)
	to := max(end, min(a.size+l.opts.PreallocateBytes, l.opts.SegmentBytes))
	if err := p.Preallocate(from, to-from, preallocKeepSize); err != nil {
		l.mu.noPrealloc = true
		if !errors.Is(err, vfs.ErrNoPreallocate) {
			l.logger.Warn("preallocating segment space failed; writing without", "file", a.segPath(), "err", err)
		}
		return
	}
	a.alloc = to
}

// Zeros ahead. A log whose flushes are fdatasyncs of little data, time
// after time (a partition synced on its own, a record or a few per sync),
// spends a good part of each fdatasync committing the conversion of the
// preallocated, unwritten blocks it wrote into. Such a log writes zeros
// ahead of its frames instead, zeroAheadBytes at a time: the fdatasync that first
// covers them allocates their blocks, later ones write data and flush the
// device cache only. A log that syncs more per flush, or is flushed by a
// syncfs (which commits the journal anyway), preallocates with fallocate:
// writing every byte twice would cost it bandwidth for nothing.
const (
	zeroAheadBytes   = 1 << 20
	zeroAheadMaxSync = 16 << 10 // bytes per flush below which a flush is small
)

// zeroAheadAfter small flushes in a row turn zeros ahead on, one larger
// flush (or a syncfs) turns them off: a log whose flush sizes vary, as under
// a throughput load, keeps fallocate. A variable for tests.
var zeroAheadAfter = 8

// zeroAheadLocked writes zeros past end (the end of a write about to
// happen) when fewer than half of zeroAheadBytes are left zeroed there,
// not past SegmentBytes. A failure stops zeros ahead for the log (it
// preallocates with fallocate if it can).
func (l *Log) zeroAheadLocked(a *segment, zw vfs.ZeroWriter, end int64) {
	if end+zeroAheadBytes/2 <= a.zeroed {
		return
	}
	from := max(a.zeroed, end)
	to := min(from+zeroAheadBytes, l.opts.SegmentBytes)
	if to <= from {
		return
	}
	if err := zw.WriteZeros(from, to-from); err != nil {
		l.mu.noZeros = true
		l.logger.Warn("writing zeros ahead of a segment's frames failed; writing without", "file", a.segPath(), "err", err)
		return
	}
	a.zeroed = to
	a.alloc = max(a.alloc, to)
}

// trimLocked truncates a segment preallocated past its frames to its size,
// releasing the blocks (and, without preallocKeepSize, the zeros). Called
// before a segment is sealed (before the roll's fsync) and at Close.
func (s *segment) trimLocked() error {
	if s.alloc <= s.size {
		return nil
	}
	if err := s.f.Truncate(s.size); err != nil {
		return err
	}
	s.alloc, s.zeroed = s.size, s.size
	return nil
}

// zeroFrameHeader reports whether b starts with a frame header of zeros:
// the end of the frames in a preallocated segment, not a torn frame.
func zeroFrameHeader(b []byte) bool {
	if len(b) < frameHeaderSize {
		return false
	}
	for _, c := range b[:frameHeaderSize] {
		if c != 0 {
			return false
		}
	}
	return true
}
