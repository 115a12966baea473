package clients

import (
	"encoding/binary"
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
// values and records_data alias segs instead of being copied (a value split between two
// segments is copied), and the records of a response share a few allocations. segs
// are the message's bytes in order, as the transport received them.
//
// Aliasing is safe only because segs belong to the response alone: they must never be
// reused or changed while any record decoded from them is reachable, so they cannot go
// back to a pool. A record keeps its segment alive.
//
// m must be empty. The batches whose plain records fail the batch CRC are returned,
// they are decoded as proto.Unmarshal decodes them all the same.
func decodeFetchResponse(segs [][]byte, m *sluicev1.FetchResponse) (badCRC []*sluicev1.RecordBatch, err error) {
	d := fetchDecoder{segs: segs}
	r := newWireReader(segs)
	err = d.response(&r, m)
	return d.badCRC, err
}

// decodeFetchRecords decodes a FetchResponse as decodeFetchResponse does, except that
// the plain records of a batch are decoded straight into Records (key, value, headers;
// see batchRecords for the rest) instead of the batch's Records, which stays empty:
// what the consumer hands out, without a sluicev1.Record for each on the way. plain maps
// each batch that had plain records to them, in order.
func decodeFetchRecords(segs [][]byte, m *sluicev1.FetchResponse) (plain map[*sluicev1.RecordBatch][]Record, badCRC []*sluicev1.RecordBatch, err error) {
	d := fetchDecoder{segs: segs, direct: true}
	r := newWireReader(segs)
	err = d.response(&r, m)
	return d.plain, d.badCRC, err
}

var (
	errWire = errors.New("sluice: malformed fetch response")
	errUTF8 = errors.New("sluice: fetch response string field is not valid UTF-8")
)

type fetchDecoder struct {
	segs   [][]byte
	slab   []sluicev1.Record // records handed out one by one, allocated in chunks
	badCRC []*sluicev1.RecordBatch

	// direct decodes plain records into plain instead of the batches' Records
	// (decodeFetchRecords).
	direct bool
	plain  map[*sluicev1.RecordBatch][]Record
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

// crc extends c over the message bytes [from, to).
func (d *fetchDecoder) crc(c uint32, from, to int) uint32 {
	for _, s := range d.segs {
		if to <= 0 {
			break
		}
		if from < len(s) {
			c = crc32.Update(c, castagnoli, s[max(from, 0):min(to, len(s))])
		}
		from -= len(s)
		to -= len(s)
	}
	return c
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// wireReader reads a message that may be split into several segments, within a limit.
type wireReader struct {
	cur  []byte   // the rest of the current segment, within the limit
	segs [][]byte // the segments after it
	left int      // bytes within the limit after cur
	pos  int      // offset of cur[0] in the whole message
}

func newWireReader(segs [][]byte) wireReader {
	r := wireReader{segs: segs}
	for _, s := range segs {
		r.left += len(s)
	}
	return r
}

func (r *wireReader) remaining() int { return len(r.cur) + r.left }

// fill makes cur non-empty if anything is left.
func (r *wireReader) fill() {
	for len(r.cur) == 0 && r.left > 0 {
		s := r.segs[0]
		r.segs = r.segs[1:]
		r.cur = s[:min(len(s), r.left)]
		r.left -= len(r.cur)
	}
}

func (r *wireReader) skip(n int) {
	for n > 0 {
		r.fill()
		k := min(n, len(r.cur))
		r.cur = r.cur[k:]
		r.pos += k
		n -= k
	}
}

// peek returns the next min(n, remaining) bytes without consuming them, copied when
// they span segments.
func (r *wireReader) peek(n int) []byte {
	r.fill()
	n = min(n, r.remaining())
	if len(r.cur) >= n {
		return r.cur[:n]
	}
	out := make([]byte, 0, n)
	out = append(out, r.cur...)
	for _, s := range r.segs {
		if len(out) == n {
			break
		}
		out = append(out, s[:min(len(s), n-len(out))]...)
	}
	return out
}

// take consumes n bytes (n <= remaining): an alias when they lie in one segment.
func (r *wireReader) take(n int) []byte {
	v := r.peek(n)
	r.skip(n)
	return v
}

// sub returns a reader of the next n bytes (n <= remaining); the caller skips them.
func (r *wireReader) sub(n int) wireReader {
	r.fill()
	k := min(n, len(r.cur))
	return wireReader{cur: r.cur[:k], segs: r.segs, left: n - k, pos: r.pos}
}

func (r *wireReader) varint() (uint64, error) {
	v, n := protowire.ConsumeVarint(r.peek(binary.MaxVarintLen64))
	if n < 0 {
		return 0, errWire
	}
	r.skip(n)
	return v, nil
}

// tag consumes a field's tag, rejecting what the protobuf runtime rejects.
func (r *wireReader) tag() (protowire.Number, protowire.Type, error) {
	v, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return 0, 0, errWire
	}
	return num, typ, nil
}

// length consumes the length of a length-delimited value and checks it is there.
func (r *wireReader) length() (int, error) {
	n, err := r.varint()
	if err != nil {
		return 0, err
	}
	if n > uint64(r.remaining()) {
		return 0, errWire
	}
	return int(n), nil
}

func (r *wireReader) bytes() ([]byte, error) {
	n, err := r.length()
	if err != nil {
		return nil, err
	}
	return r.take(n), nil
}

// message decodes the next length-delimited value with f.
func (r *wireReader) message(f func(*wireReader) error) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	sr := r.sub(n)
	if err := f(&sr); err != nil {
		return err
	}
	r.skip(n)
	return nil
}

// unknown consumes a field's value (its tag read) and appends the field to u as the
// runtime keeps an unknown field: the tag re-encoded, then the value's bytes as sent.
func (r *wireReader) unknown(u []byte, num protowire.Number, typ protowire.Type) ([]byte, error) {
	var m int
	switch typ {
	case protowire.BytesType:
		p := r.peek(binary.MaxVarintLen64)
		n, k := protowire.ConsumeVarint(p)
		if k < 0 || n > uint64(r.remaining()-k) {
			return u, errWire
		}
		m = k + int(n)
	case protowire.StartGroupType:
		m = protowire.ConsumeFieldValue(num, typ, r.peek(r.remaining()))
	default:
		m = protowire.ConsumeFieldValue(num, typ, r.peek(binary.MaxVarintLen64))
	}
	if m < 0 {
		return u, errWire
	}
	u = protowire.AppendTag(u, num, typ)
	return append(u, r.take(m)...), nil
}

// alias returns v as a proto3 bytes field holds it: nil when empty, capped so an append
// never writes into the bytes after it.
func alias(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return v[:len(v):len(v)]
}

func (d *fetchDecoder) response(r *wireReader, m *sluicev1.FetchResponse) error {
	var unk []byte
	for r.remaining() > 0 {
		num, typ, err := r.tag()
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, err := r.bytes()
			if err != nil {
				return err
			}
			if !utf8.Valid(v) {
				return errUTF8
			}
			m.Topic = string(v)
		case num == 2 && typ == protowire.BytesType:
			fp := new(sluicev1.FetchedPartition)
			if err := r.message(func(r *wireReader) error { return d.partition(r, fp) }); err != nil {
				return err
			}
			m.Partitions = append(m.Partitions, fp)
		default:
			if unk, err = r.unknown(unk, num, typ); err != nil {
				return err
			}
		}
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}

func (d *fetchDecoder) partition(r *wireReader, m *sluicev1.FetchedPartition) error {
	var unk []byte
	for r.remaining() > 0 {
		num, typ, err := r.tag()
		if err != nil {
			return err
		}
		switch {
		case (num == 1 || num == 3 || num == 4 || num == 5) && typ == protowire.VarintType:
			x, err := r.varint()
			if err != nil {
				return err
			}
			switch num {
			case 1:
				m.Partition = int32(x)
			case 3:
				m.HighWatermark = int64(x)
			case 4:
				m.LastStableOffset = int64(x)
			case 5:
				m.LogStartOffset = int64(x)
			}
		case num == 2 && typ == protowire.BytesType:
			rb := new(sluicev1.RecordBatch)
			if err := r.message(func(r *wireReader) error { return d.batch(r, rb) }); err != nil {
				return err
			}
			m.Batches = append(m.Batches, rb)
		case num == 6 && typ == protowire.BytesType:
			v, err := r.bytes()
			if err != nil {
				return err
			}
			// Rare and small: the runtime decodes it, merging as it would.
			if m.Error == nil {
				m.Error = new(sluicev1.Error)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, m.Error); err != nil {
				return err
			}
		default:
			if unk, err = r.unknown(unk, num, typ); err != nil {
				return err
			}
		}
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}

func (d *fetchDecoder) batch(r *wireReader, m *sluicev1.RecordBatch) error {
	var unk []byte
	// The CRC of the plain records: over their entries as they are on the wire (tag,
	// length, record), gathered in contiguous runs.
	var crc uint32
	runStart, runEnd := 0, 0
	// A node sends the records last and in one run: their CRC is computed over the rest
	// of the batch when the first one is met, which also brings the batch into the
	// cache for decoding them. It counts if they turn out to be that one run.
	var pre uint32
	preStart, preEnd, runs := -1, -1, 0
	var recs []Record // direct: the batch's records
	for r.remaining() > 0 {
		start := r.pos
		num, typ, err := r.tag()
		if err != nil {
			return err
		}
		switch {
		case num <= 12 && num != 11 && typ == protowire.VarintType:
			x, err := r.varint()
			if err != nil {
				return err
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
			case 12:
				m.LeaderEpoch = int64(x)
			}
		case num == 11 && typ == protowire.Fixed32Type:
			p := r.peek(4)
			c, n := protowire.ConsumeFixed32(p)
			if n < 0 {
				return errWire
			}
			r.skip(n)
			m.Crc = c
		case num == 15 && typ == protowire.BytesType:
			if runs == 0 && m.Crc != 0 {
				preStart, preEnd = start, start+(r.pos-start)+r.remaining()
				pre = d.crc(0, preStart, preEnd)
			}
			n, err := r.length()
			if err != nil {
				return err
			}
			r.fill()
			if d.direct {
				if recs == nil {
					// One allocation for the batch's records when record_count comes
					// first, as a node sends it; never more than the bytes could hold.
					recs = make([]Record, 0, max(0, min(int(m.RecordCount), r.remaining()/2+1)))
				}
				recs = append(recs, Record{})
				rec := &recs[len(recs)-1]
				if len(r.cur) < n || !recordFlatDirect(r.cur[:n], rec) {
					sr := r.sub(n)
					if err := recordDirect(&sr, rec); err != nil {
						return err
					}
				}
			} else {
				rec := d.record()
				if len(r.cur) < n || !recordFlat(r.cur[:n], rec) {
					sr := r.sub(n)
					if err := recordInto(&sr, rec); err != nil {
						return err
					}
				}
				m.Records = append(m.Records, rec)
			}
			r.skip(n)
			if start != runEnd || runs == 0 {
				crc = d.crc(crc, runStart, runEnd)
				runStart = start
				runs++
			}
			runEnd = r.pos
		case num == 16 && typ == protowire.BytesType:
			v, err := r.bytes()
			if err != nil {
				return err
			}
			m.RecordsData = alias(v)
		default:
			if unk, err = r.unknown(unk, num, typ); err != nil {
				return err
			}
		}
	}
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	if len(recs) > 0 {
		if d.plain == nil {
			d.plain = make(map[*sluicev1.RecordBatch][]Record)
		}
		d.plain[m] = recs
	}
	if m.Crc != 0 && len(m.Records)+len(recs) > 0 {
		if runs != 1 || runStart != preStart || runEnd != preEnd {
			pre = d.crc(crc, runStart, runEnd)
		}
		if pre != m.Crc {
			d.badCRC = append(d.badCRC, m)
		}
	}
	return nil
}

// recordFlat decodes a record that lies in one segment and has nothing but canonical
// tags of key, value and timestamp, the usual record. For anything else (headers,
// unknown fields, an odd tag, malformed bytes) it leaves m empty and reports false:
// recordInto then decodes it, and decides what is malformed.
func recordFlat(b []byte, m *sluicev1.Record) bool {
	key, value, ts, ok := flatFields(b)
	if !ok {
		m.Key, m.Value, m.TimestampMs = nil, nil, 0
		return false
	}
	m.Key, m.Value, m.TimestampMs = key, value, ts
	return true
}

// flatFields reads a record made of canonical key, value and timestamp_ms tags only
// (the last of each wins, as in proto.Unmarshal); key and value alias b. It reports
// false for anything else.
func flatFields(b []byte) (key, value []byte, ts int64, ok bool) {
	for len(b) > 0 {
		switch t := b[0]; t {
		case 0x0a, 0x12: // key, value: field 1 and 2, bytes
			v, n := protowire.ConsumeBytes(b[1:])
			if n < 0 {
				return nil, nil, 0, false
			}
			if t == 0x0a {
				key = alias(v)
			} else {
				value = alias(v)
			}
			b = b[1+n:]
		case 0x20: // timestamp_ms: field 4, varint
			x, n := protowire.ConsumeVarint(b[1:])
			if n < 0 {
				return nil, nil, 0, false
			}
			ts = int64(x)
			b = b[1+n:]
		default:
			return nil, nil, 0, false
		}
	}
	return key, value, ts, true
}

func recordInto(r *wireReader, m *sluicev1.Record) error {
	key, value, ts, unk, err := recordFields(r, func(r *wireReader) error {
		h := new(sluicev1.RecordHeader)
		if err := header(r, h); err != nil {
			return err
		}
		m.Headers = append(m.Headers, h)
		return nil
	})
	if err != nil {
		return err
	}
	m.Key, m.Value, m.TimestampMs = key, value, ts
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}

// recordFields reads a record's fields as proto.Unmarshal reads a sluicev1.Record:
// the last key, value and timestamp_ms win (key and value alias the reader's bytes),
// each header goes to onHeader, which reads it from the reader it is given, and the
// other fields come back in unk.
func recordFields(r *wireReader, onHeader func(*wireReader) error) (key, value []byte, ts int64, unk []byte, err error) {
	for r.remaining() > 0 {
		num, typ, err := r.tag()
		if err != nil {
			return nil, nil, 0, nil, err
		}
		switch {
		case (num == 1 || num == 2) && typ == protowire.BytesType:
			v, err := r.bytes()
			if err != nil {
				return nil, nil, 0, nil, err
			}
			if num == 1 {
				key = alias(v)
			} else {
				value = alias(v)
			}
		case num == 3 && typ == protowire.BytesType:
			if err := r.message(onHeader); err != nil {
				return nil, nil, 0, nil, err
			}
		case num == 4 && typ == protowire.VarintType:
			x, err := r.varint()
			if err != nil {
				return nil, nil, 0, nil, err
			}
			ts = int64(x)
		default:
			if unk, err = r.unknown(unk, num, typ); err != nil {
				return nil, nil, 0, nil, err
			}
		}
	}
	return key, value, ts, unk, nil
}

func header(r *wireReader, m *sluicev1.RecordHeader) error {
	key, value, unk, err := headerFields(r)
	if err != nil {
		return err
	}
	m.Key, m.Value = key, value
	if unk != nil {
		m.ProtoReflect().SetUnknown(unk)
	}
	return nil
}

// headerFields decodes a RecordHeader: its key (valid UTF-8), its value
// (aliased) and the fields it does not know, for header and headerDirect.
func headerFields(r *wireReader) (key string, value []byte, unk []byte, err error) {
	for r.remaining() > 0 {
		num, typ, err := r.tag()
		if err != nil {
			return "", nil, nil, err
		}
		switch {
		case (num == 1 || num == 2) && typ == protowire.BytesType:
			v, err := r.bytes()
			if err != nil {
				return "", nil, nil, err
			}
			if num == 1 {
				if !utf8.Valid(v) {
					return "", nil, nil, errUTF8
				}
				key = string(v)
			} else {
				value = alias(v)
			}
		default:
			if unk, err = r.unknown(unk, num, typ); err != nil {
				return "", nil, nil, err
			}
		}
	}
	return key, value, unk, nil
}
