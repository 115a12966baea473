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
	if l.mu.noPrealloc || l.opts.PreallocateBytes <= 0 || end <= a.alloc {
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
	s.alloc = s.size
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
