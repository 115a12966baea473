package storage

import (
	"sync"
)

const scanBufSize = 16 << 10

var scanBufPool = sync.Pool{New: func() any { b := make([]byte, scanBufSize); return &b }}

// frameReader walks frames of one segment file from pos up to end.
type frameReader struct {
	f   File
	ref fileRef
	pos int64 // position of the next frame
	end int64

	buf  []byte
	bOff int64 // file position of buf[0]
	bLen int   // valid bytes in buf
	pool *[]byte
}

func newFrameReader(f File, ref fileRef, pos, end int64) *frameReader {
	p := scanBufPool.Get().(*[]byte)
	return &frameReader{f: f, ref: ref, pos: pos, end: end, buf: *p, pool: p}
}

// release returns the pooled buffer.
func (r *frameReader) release() {
	if r.pool != nil && cap(r.buf) == scanBufSize {
		*r.pool = r.buf[:scanBufSize]
		scanBufPool.Put(r.pool)
	}
	r.pool, r.buf = nil, nil
}

// fill makes buf hold [r.pos, r.pos+n) (n bytes, within end).
func (r *frameReader) fill(n int) ([]byte, error) {
	if r.pos >= r.bOff && r.pos+int64(n) <= r.bOff+int64(r.bLen) {
		s := int(r.pos - r.bOff)
		return r.buf[s : s+n], nil
	}
	if n > len(r.buf) {
		r.buf = make([]byte, n)
	}
	want := len(r.buf)
	if rem := r.end - r.pos; int64(want) > rem {
		want = int(rem)
	}
	if want < n {
		return nil, errShortFrame
	}
	if err := readFullAt(r.f, r.buf[:want], r.pos); err != nil {
		return nil, err
	}
	r.bOff, r.bLen = r.pos, want
	return r.buf[:n], nil
}

// nextMeta returns the metadata of the next frame without checking its
// CRC, and advances past it. It returns done=true at end.
func (r *frameReader) nextMeta() (m frameMeta, pos int64, done bool, err error) {
	if r.pos >= r.end {
		return m, r.pos, true, nil
	}
	pos = r.pos
	if r.end-r.pos < frameOverhead {
		return m, pos, false, r.corrupt(errShortFrame)
	}
	b, err := r.fill(frameOverhead)
	if err != nil {
		return m, pos, false, r.wrap(err)
	}
	m, err = decodeFrameMeta(b)
	if err != nil {
		return m, pos, false, r.corrupt(err)
	}
	if r.pos+m.frameSize() > r.end {
		return m, pos, false, r.corrupt(errShortFrame)
	}
	r.pos += m.frameSize()
	return m, pos, false, nil
}

// next returns the next whole frame, CRC checked. data aliases an internal
// buffer valid until the next call.
func (r *frameReader) next() (m frameMeta, data []byte, pos int64, done bool, err error) {
	if r.pos >= r.end {
		return m, nil, r.pos, true, nil
	}
	pos = r.pos
	if r.end-r.pos < frameOverhead {
		return m, nil, pos, false, r.corrupt(errShortFrame)
	}
	h, err := r.fill(frameHeaderSize)
	if err != nil {
		return m, nil, pos, false, r.wrap(err)
	}
	size, err := frameLen(h)
	if err != nil {
		return m, nil, pos, false, r.corrupt(err)
	}
	if r.pos+int64(size) > r.end {
		return m, nil, pos, false, r.corrupt(errShortFrame)
	}
	b, err := r.fill(size)
	if err != nil {
		return m, nil, pos, false, r.wrap(err)
	}
	m, data, _, err = decodeFrame(b)
	if err != nil {
		return m, nil, pos, false, r.corrupt(err)
	}
	r.pos += int64(size)
	return m, data, pos, false, nil
}

func (r *frameReader) corrupt(err error) error {
	return &CorruptionError{File: r.ref.String(), Pos: r.pos, Reason: err.Error()}
}

func (r *frameReader) wrap(err error) error {
	if err == errShortFrame {
		return r.corrupt(err)
	}
	return err
}

// scanTo walks frames from p (a frame boundary) until the frame at which
// stop returns true (that frame is not consumed: the returned point is at
// its start and m is its metadata) or the end (found=false, point at end).
func scanTo(s *segment, p point, end int64, stop func(p point, m *frameMeta) bool) (q point, m frameMeta, found bool, err error) {
	r := newFrameReader(s.f, fileRef{s, 'l'}, p.pos, end)
	defer r.release()
	for {
		var pos int64
		var done bool
		m, pos, done, err = r.nextMeta()
		if err != nil {
			return p, m, false, err
		}
		if done {
			return p, m, false, nil
		}
		if p.index == 0 { // from the time index: the Raft index is not stored
			p.index = m.Index
		}
		if pos != p.pos || m.Index != p.index {
			return p, m, false, &CorruptionError{File: s.segPath(), Pos: pos, Reason: "frame out of sequence"}
		}
		if stop(p, &m) {
			return p, m, true, nil
		}
		p = advance(p, &m)
	}
}

// advance moves p past the frame m at p.
func advance(p point, m *frameMeta) point {
	p.pos += m.frameSize()
	p.index++
	if m.Records > 0 {
		p.offset += uint64(m.Records)
		if m.MaxTimestamp > p.tsBefore {
			p.tsBefore = m.MaxTimestamp
		}
	}
	return p
}
