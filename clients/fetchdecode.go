package clients

import (
	"errors"
	"hash/crc32"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// decodeFetchResponse decodes a FetchResponse as proto.Unmarshal does (unknown fields
// kept, a known field of the wrong wire type kept as unknown, the last of a repeated
// scalar wins, strings checked for UTF-8), except that record keys and values, header
// values and records_data alias b instead of being copied, and the records of a response
// share a few allocations.
//
// Aliasing is safe only because b belongs to the response alone: b must never be reused
// or changed while any record decoded from it is reachable, so it cannot come from a
// pool. A record keeps all of b alive.
//
// m must be empty. The batches whose plain records fail the batch CRC are returned,
// they are decoded as proto.Unmarshal decodes them all the same.
func decodeFetchResponse(b []byte, m *sluicev1.FetchResponse) (badCRC []*sluicev1.RecordBatch, err error) {
	d := fetchDecoder{}
	err = d.response(b, m)
	return d.badCRC, err
}

var (
	errWire = errors.New("sluice: malformed fetch response")
	errUTF8 = errors.New("sluice: fetch response string field is not valid UTF-8")
)

type fetchDecoder struct {
	slab   []sluicev1.Record // records handed out one by one, allocated in chunks
	badCRC []*sluicev1.RecordBatch
}

const recordSlab = 256

func (d *fetchDecoder) record() *sluicev1.Record {
	if len(d.slab) == 0 {
		d.slab = make([]sluicev1.Record, recordSlab)
	}
	r := &d.slab[0]
	d.slab = d.slab[1:]
	return r
}

// tag consumes a field's tag, rejecting what the protobuf runtime rejects.
func tag(b []byte) (protowire.Number, protowire.Type, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num > protowire.MaxValidNumber {
		return 0, 0, 0, errWire
	}
	return num, typ, n, nil
}

// unknown appends the field at b (after its tag of n bytes) to u as the runtime keeps
// an unknown field: the tag re-encoded, then the value's bytes. It returns the bytes of
// b the field took.
func unknown(u []byte, num protowire.Number, typ protowire.Type, b []byte, n int) ([]byte, int, error) {
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return u, 0, errWire
	}
	u = protowire.AppendTag(u, num, typ)
	return append(u, b[n:n+m]...), n + m, nil
}

// field consumes a field of the expected wire type after its tag: varint value, or
// bytes value, or fixed32 value. ok is false when the wire type is another.
func varint(b []byte, typ protowire.Type) (uint64, int, bool, error) {
	if typ != protowire.VarintType {
		return 0, 0, false, nil
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, true, errWire
	}
	return v, n, true, nil
}

func lenDelim(b []byte, typ protowire.Type) ([]byte, int, bool, error) {
	if typ != protowire.BytesType {
		return nil, 0, false, nil
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, true, errWire
	}
	return v, n, true, nil
}

// alias returns v as a proto3 bytes field holds it: nil when empty, capped so an append
// never writes into the bytes after it.
func alias(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return v[:len(v):len(v)]
}

func (d *fetchDecoder) response(b []byte, m *sluicev1.FetchResponse) error {
	var unk []byte
	for len(b) > 0 {
		num, typ, n, err := tag(b)
		if err != nil {
			return err
		}
		var v []byte
		var k int
		var ok bool
		switch num {
		case 1, 2:
			v, k, ok, err = lenDelim(b[n:], typ)
		}
		if err != nil {
			return err
		}
		if !ok {
			if unk, k, err = unknown(unk, num, typ, b, n); err != nil {
				return err
			}
			b = b[k:]
			continue
		}
		switch num {
		case 1:
			if !utf8.Valid(v) {
				return errUTF8
			}
			m.Topic = string(v)
		case 2:
			fp := new(sluicev1.FetchedPartition)
			if err := d.partition(v, fp); err != nil {
				return err
			}
			m.Partitions = append(m.Partitions, fp)
		}
		b = b[n+k:]
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}

func (d *fetchDecoder) partition(b []byte, m *sluicev1.FetchedPartition) error {
	var unk []byte
	for len(b) > 0 {
		num, typ, n, err := tag(b)
		if err != nil {
			return err
		}
		var x uint64
		var v []byte
		var k int
		var ok bool
		switch num {
		case 1, 3, 4, 5:
			x, k, ok, err = varint(b[n:], typ)
		case 2, 6:
			v, k, ok, err = lenDelim(b[n:], typ)
		}
		if err != nil {
			return err
		}
		if !ok {
			if unk, k, err = unknown(unk, num, typ, b, n); err != nil {
				return err
			}
			b = b[k:]
			continue
		}
		switch num {
		case 1:
			m.Partition = int32(x)
		case 2:
			rb := new(sluicev1.RecordBatch)
			if err := d.batch(v, rb); err != nil {
				return err
			}
			m.Batches = append(m.Batches, rb)
		case 3:
			m.HighWatermark = int64(x)
		case 4:
			m.LastStableOffset = int64(x)
		case 5:
			m.LogStartOffset = int64(x)
		case 6:
			// Rare and small: the runtime decodes it, merging as it would.
			if m.Error == nil {
				m.Error = new(sluicev1.Error)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, m.Error); err != nil {
				return err
			}
		}
		b = b[n+k:]
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}

func (d *fetchDecoder) batch(b []byte, m *sluicev1.RecordBatch) error {
	var unk []byte
	// The CRC of the plain records: over their entries as they are on the wire (tag,
	// length, record), gathered in contiguous runs.
	var crc uint32
	runStart, runEnd := 0, 0
	whole := b
	for len(b) > 0 {
		num, typ, n, err := tag(b)
		if err != nil {
			return err
		}
		var x uint64
		var v []byte
		var k int
		var ok bool
		switch num {
		case 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12:
			x, k, ok, err = varint(b[n:], typ)
		case 11:
			if typ == protowire.Fixed32Type {
				var c uint32
				c, k = protowire.ConsumeFixed32(b[n:])
				ok = true
				if k < 0 {
					err = errWire
				}
				x = uint64(c)
			}
		case 15, 16:
			v, k, ok, err = lenDelim(b[n:], typ)
		}
		if err != nil {
			return err
		}
		if !ok {
			if unk, k, err = unknown(unk, num, typ, b, n); err != nil {
				return err
			}
			b = b[k:]
			continue
		}
		switch num {
		case 1:
			m.BaseOffset = int64(x)
		case 2:
			m.RecordCount = int32(x)
		case 3:
			m.Compression = sluicev1.Compression(int32(x))
		case 4:
			m.TimestampType = sluicev1.TimestampType(int32(x))
		case 5:
			m.MaxTimestampMs = int64(x)
		case 6:
			m.ProducerId = int64(x)
		case 7:
			m.ProducerEpoch = int32(x)
		case 8:
			m.BaseSequence = int32(x)
		case 9:
			m.Transactional = protowire.DecodeBool(x)
		case 10:
			m.Control = protowire.DecodeBool(x)
		case 11:
			m.Crc = uint32(x)
		case 12:
			m.LeaderEpoch = int64(x)
		case 15:
			r := d.record()
			if err := d.recordInto(v, r); err != nil {
				return err
			}
			m.Records = append(m.Records, r)
			start := len(whole) - len(b)
			if start != runEnd {
				crc = crc32.Update(crc, castagnoli, whole[runStart:runEnd])
				runStart = start
			}
			runEnd = start + n + k
		case 16:
			m.RecordsData = alias(v)
		}
		b = b[n+k:]
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	if m.Crc != 0 && len(m.Records) > 0 {
		if crc32.Update(crc, castagnoli, whole[runStart:runEnd]) != m.Crc {
			d.badCRC = append(d.badCRC, m)
		}
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (d *fetchDecoder) recordInto(b []byte, m *sluicev1.Record) error {
	var unk []byte
	for len(b) > 0 {
		num, typ, n, err := tag(b)
		if err != nil {
			return err
		}
		var x uint64
		var v []byte
		var k int
		var ok bool
		switch num {
		case 1, 2, 3:
			v, k, ok, err = lenDelim(b[n:], typ)
		case 4:
			x, k, ok, err = varint(b[n:], typ)
		}
		if err != nil {
			return err
		}
		if !ok {
			if unk, k, err = unknown(unk, num, typ, b, n); err != nil {
				return err
			}
			b = b[k:]
			continue
		}
		switch num {
		case 1:
			m.Key = alias(v)
		case 2:
			m.Value = alias(v)
		case 3:
			h := new(sluicev1.RecordHeader)
			if err := header(v, h); err != nil {
				return err
			}
			m.Headers = append(m.Headers, h)
		case 4:
			m.TimestampMs = int64(x)
		}
		b = b[n+k:]
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}

func header(b []byte, m *sluicev1.RecordHeader) error {
	var unk []byte
	for len(b) > 0 {
		num, typ, n, err := tag(b)
		if err != nil {
			return err
		}
		var v []byte
		var k int
		var ok bool
		switch num {
		case 1, 2:
			v, k, ok, err = lenDelim(b[n:], typ)
		}
		if err != nil {
			return err
		}
		if !ok {
			if unk, k, err = unknown(unk, num, typ, b, n); err != nil {
				return err
			}
			b = b[k:]
			continue
		}
		switch num {
		case 1:
			if !utf8.Valid(v) {
				return errUTF8
			}
			m.Key = string(v)
		case 2:
			m.Value = alias(v)
		}
		b = b[n+k:]
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}
