package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"go.etcd.io/raft/v3/raftpb"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// noTimestamp marks "no record batch seen" in timestamps.
const noTimestamp = math.MinInt64

// Frame layout (little endian):
//
//	[0:4)   body length n
//	[4:8)   CRC32C of the body
//	body:
//	[0:8)   index
//	[8:16)  term
//	[16]    entry type
//	[17:21) records
//	[21:29) max timestamp
//	[29:n)  data
const (
	frameHeaderSize = 8
	bodyHeaderSize  = 29
	frameOverhead   = frameHeaderSize + bodyHeaderSize
	maxFrameBody    = 1 << 30
)

// frameMeta is a frame without its data.
type frameMeta struct {
	Index, Term  uint64
	Type         raftpb.EntryType
	Records      uint32
	MaxTimestamp int64
	DataLen      int
}

func (m *frameMeta) frameSize() int64 { return int64(frameOverhead + m.DataLen) }

func frameSize(e *Entry) int { return frameOverhead + len(e.Data) }

// appendFrame appends e's frame to dst.
func appendFrame(dst []byte, e *Entry) []byte {
	n := bodyHeaderSize + len(e.Data)
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, e.Index)
	dst = binary.LittleEndian.AppendUint64(dst, e.Term)
	dst = append(dst, byte(e.Type))
	dst = binary.LittleEndian.AppendUint32(dst, e.Records)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.MaxTimestamp))
	dst = append(dst, e.Data...)
	binary.LittleEndian.PutUint32(dst[start+4:], crc(dst[start+frameHeaderSize:]))
	return dst
}

var (
	errShortFrame = errors.New("short frame")
	errFrameLen   = errors.New("bad frame length")
	errFrameCRC   = errors.New("frame checksum mismatch")
	errFrameType  = errors.New("bad entry type")
)

// frameLen decodes the header of a frame: the total frame size. hdr must
// hold at least frameHeaderSize bytes.
func frameLen(hdr []byte) (int, error) {
	n := binary.LittleEndian.Uint32(hdr)
	if n < bodyHeaderSize || n > maxFrameBody {
		return 0, errFrameLen
	}
	return frameHeaderSize + int(n), nil
}

// decodeFrameMeta decodes a frame's header and body header without checking
// the CRC. b must hold at least frameOverhead bytes.
func decodeFrameMeta(b []byte) (frameMeta, error) {
	if len(b) < frameOverhead {
		return frameMeta{}, errShortFrame
	}
	size, err := frameLen(b)
	if err != nil {
		return frameMeta{}, err
	}
	body := b[frameHeaderSize:]
	m := frameMeta{
		Index:        binary.LittleEndian.Uint64(body[0:]),
		Term:         binary.LittleEndian.Uint64(body[8:]),
		Type:         raftpb.EntryType(body[16]),
		Records:      binary.LittleEndian.Uint32(body[17:]),
		MaxTimestamp: int64(binary.LittleEndian.Uint64(body[21:])),
		DataLen:      size - frameOverhead,
	}
	if _, ok := raftpb.EntryType_name[int32(m.Type)]; !ok {
		return frameMeta{}, errFrameType
	}
	return m, nil
}

// decodeFrame decodes and checks one whole frame at the start of b. data
// aliases b. It returns the frame size.
func decodeFrame(b []byte) (m frameMeta, data []byte, size int, err error) {
	if len(b) < frameOverhead {
		return m, nil, 0, errShortFrame
	}
	size, err = frameLen(b)
	if err != nil {
		return m, nil, 0, err
	}
	if len(b) < size {
		return m, nil, 0, errShortFrame
	}
	if crc(b[frameHeaderSize:size]) != binary.LittleEndian.Uint32(b[4:]) {
		return m, nil, 0, errFrameCRC
	}
	m, err = decodeFrameMeta(b)
	if err != nil {
		return m, nil, 0, err
	}
	return m, b[frameOverhead:size:size], size, nil
}

// Segment header layout (little endian), segHeaderSize bytes:
//
//	[0:4)   magic "SLSG"
//	[4]     version (1)
//	[5:8)   reserved, zero
//	[8:16)  base index: index of the first entry
//	[16:24) previous term: term of the entry at base index - 1
//	[24:32) base offset: offset of the first record in the segment
//	[32:40) created, unix ms
//	[40:44) reserved, zero
//	[44:48) CRC32C of [0:44)
const (
	segHeaderSize = 48
	segVersion    = 1
)

var segMagic = [4]byte{'S', 'L', 'S', 'G'}

type segHeader struct {
	BaseIndex, PrevTerm, BaseOffset uint64
	Created                         int64
}

func (h *segHeader) encode() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic[:])
	b[4] = segVersion
	binary.LittleEndian.PutUint64(b[8:], h.BaseIndex)
	binary.LittleEndian.PutUint64(b[16:], h.PrevTerm)
	binary.LittleEndian.PutUint64(b[24:], h.BaseOffset)
	binary.LittleEndian.PutUint64(b[32:], uint64(h.Created))
	binary.LittleEndian.PutUint32(b[44:], crc(b[:44]))
	return b
}

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, errors.New("short segment header")
	}
	if [4]byte(b[:4]) != segMagic {
		return segHeader{}, errors.New("bad segment magic")
	}
	if b[4] != segVersion {
		return segHeader{}, fmt.Errorf("unknown segment version %d", b[4])
	}
	if crc(b[:44]) != binary.LittleEndian.Uint32(b[44:]) {
		return segHeader{}, errors.New("segment header checksum mismatch")
	}
	return segHeader{
		BaseIndex:  binary.LittleEndian.Uint64(b[8:]),
		PrevTerm:   binary.LittleEndian.Uint64(b[16:]),
		BaseOffset: binary.LittleEndian.Uint64(b[24:]),
		Created:    int64(binary.LittleEndian.Uint64(b[32:])),
	}, nil
}

// Index entries, indexEntrySize bytes each, no file header:
//
//	offset index (.index):     [0:8) next offset at pos, [8:16) index of the frame at pos,
//	                           [16:20) pos, [20:24) CRC32C of [0:20)
//	time index (.timeindex):   [0:8) max timestamp of the batches before pos,
//	                           [8:16) next offset at pos, [16:20) pos, [20:24) CRC32C
//
// Both are sparse: an offset entry every IndexIntervalBytes of frames, a
// time entry at those points where the max timestamp grew. The segment start
// is implicitly indexed. A sealed segment ends both files with a sentinel at
// pos = segment size (offset index: next offset, last index + 1; time index:
// max timestamp of the segment).
const indexEntrySize = 24

// idxEntry is a decoded entry of either index: for the offset index A is
// the offset and B the Raft index; for the time index A is the timestamp and
// B the offset.
type idxEntry struct {
	A, B uint64
	Pos  uint32
}

func appendIdxEntry(dst []byte, e idxEntry) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, e.A)
	dst = binary.LittleEndian.AppendUint64(dst, e.B)
	dst = binary.LittleEndian.AppendUint32(dst, e.Pos)
	return binary.LittleEndian.AppendUint32(dst, crc(dst[start:]))
}

var errIndexCRC = errors.New("index entry checksum mismatch")

func decodeIdxEntry(b []byte) (idxEntry, error) {
	if len(b) < indexEntrySize {
		return idxEntry{}, errors.New("short index entry")
	}
	if crc(b[:20]) != binary.LittleEndian.Uint32(b[20:]) {
		return idxEntry{}, errIndexCRC
	}
	return idxEntry{
		A:   binary.LittleEndian.Uint64(b),
		B:   binary.LittleEndian.Uint64(b[8:]),
		Pos: binary.LittleEndian.Uint32(b[16:]),
	}, nil
}
