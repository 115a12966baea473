package batch

import (
	"hash/crc32"

	"google.golang.org/protobuf/encoding/protowire"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// RecordBatch field numbers.
const (
	fieldBaseOffset     = 1
	fieldRecordCount    = 2
	fieldCompression    = 3
	fieldTimestampType  = 4
	fieldMaxTimestampMs = 5
	fieldProducerID     = 6
	fieldProducerEpoch  = 7
	fieldBaseSequence   = 8
	fieldTransactional  = 9
	fieldControl        = 10
	fieldCRC            = 11
	fieldLeaderEpoch    = 12
	fieldRecords        = 15
	fieldRecordsData    = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC-32C (Castagnoli) of b, the checksum RecordBatch.crc carries.
func CRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Header is the decoded header of a stored batch. For a batch without a producer id,
// ProducerID, ProducerEpoch and BaseSequence are -1.
type Header struct {
	RecordCount    int32
	Compression    sluicev1.Compression // COMPRESSION_NONE for plain records, never UNSPECIFIED
	TimestampType  sluicev1.TimestampType
	MaxTimestampMs int64
	ProducerID     int64
	ProducerEpoch  int32
	BaseSequence   int32
	Transactional  bool
	Control        bool
	CRC            uint32 // CRC-32C of the records bytes as stored (field-15 entries or records_data)
}

// Idempotent reports whether the batch carries a producer id.
func (h *Header) Idempotent() bool { return h.ProducerID > 0 }

// LastSequence is the sequence number of the batch's last record (-1 without a producer id).
func (h *Header) LastSequence() int32 {
	if !h.Idempotent() {
		return -1
	}
	return h.BaseSequence + h.RecordCount - 1
}

// headerSize is the encoded size of h's fields 2..11.
func headerSize(h *Header) int {
	n := 0
	if h.RecordCount != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(h.RecordCount)))
	}
	n += 1 + protowire.SizeVarint(uint64(h.Compression))
	n += 1 + protowire.SizeVarint(uint64(h.TimestampType))
	if h.MaxTimestampMs != 0 {
		n += 1 + protowire.SizeVarint(uint64(h.MaxTimestampMs))
	}
	if h.ProducerID > 0 {
		n += 1 + protowire.SizeVarint(uint64(h.ProducerID))
		if h.ProducerEpoch != 0 {
			n += 1 + protowire.SizeVarint(uint64(int64(h.ProducerEpoch)))
		}
		if h.BaseSequence != 0 {
			n += 1 + protowire.SizeVarint(uint64(int64(h.BaseSequence)))
		}
	}
	if h.Transactional {
		n += 2
	}
	if h.Control {
		n += 2
	}
	if h.CRC != 0 {
		n += 1 + 4
	}
	return n
}

// appendHeader appends h's fields 2..11 in field order, zero values omitted (proto3), the
// producer fields only with a producer id.
func appendHeader(b []byte, h *Header) []byte {
	if h.RecordCount != 0 {
		b = protowire.AppendTag(b, fieldRecordCount, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(h.RecordCount)))
	}
	b = protowire.AppendTag(b, fieldCompression, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(h.Compression))
	b = protowire.AppendTag(b, fieldTimestampType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(h.TimestampType))
	if h.MaxTimestampMs != 0 {
		b = protowire.AppendTag(b, fieldMaxTimestampMs, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(h.MaxTimestampMs))
	}
	if h.ProducerID > 0 {
		b = protowire.AppendTag(b, fieldProducerID, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(h.ProducerID))
		if h.ProducerEpoch != 0 {
			b = protowire.AppendTag(b, fieldProducerEpoch, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(h.ProducerEpoch)))
		}
		if h.BaseSequence != 0 {
			b = protowire.AppendTag(b, fieldBaseSequence, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(h.BaseSequence)))
		}
	}
	if h.Transactional {
		b = protowire.AppendTag(b, fieldTransactional, protowire.VarintType)
		b = append(b, 1)
	}
	if h.Control {
		b = protowire.AppendTag(b, fieldControl, protowire.VarintType)
		b = append(b, 1)
	}
	if h.CRC != 0 {
		b = protowire.AppendTag(b, fieldCRC, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, h.CRC)
	}
	return b
}

// ParseHeader decodes the header of a stored batch (as built by Normalize). It checks the
// header strictly (canonical field order, known fields, valid values) and the framing of
// the records — a compressed batch must end with exactly one records_data field, a plain
// batch must start its records with a field-15 entry — but it does not walk every record:
// Normalize validated them before the batch was stored.
func ParseHeader(stored []byte) (Header, error) {
	h, _, err := parseStored(stored)
	return h, err
}

// parseStored returns the header and the records bytes: the field-15 entries of a plain
// batch, or the contents of records_data of a compressed one.
func parseStored(stored []byte) (Header, []byte, error) {
	h := Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	var producerID int64
	var epoch, seq int32
	last := protowire.Number(0)
	b := stored
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return h, nil, corrupt("stored header: bad tag")
		}
		if num == fieldRecords || num == fieldRecordsData {
			break
		}
		if num <= last {
			return h, nil, corrupt("stored header: field %d out of order", num)
		}
		last = num
		b = b[n:]
		if num == fieldCRC {
			if typ != protowire.Fixed32Type {
				return h, nil, corrupt("stored header: crc wire type %d", typ)
			}
			v, m := protowire.ConsumeFixed32(b)
			if m < 0 {
				return h, nil, corrupt("stored header: truncated crc")
			}
			h.CRC = v
			b = b[m:]
			continue
		}
		if typ != protowire.VarintType {
			return h, nil, corrupt("stored header: field %d wire type %d", num, typ)
		}
		v, m := protowire.ConsumeVarint(b)
		if m < 0 {
			return h, nil, corrupt("stored header: truncated field %d", num)
		}
		b = b[m:]
		switch num {
		case fieldRecordCount:
			h.RecordCount = int32(v)
		case fieldCompression:
			h.Compression = sluicev1.Compression(int32(v))
		case fieldTimestampType:
			h.TimestampType = sluicev1.TimestampType(int32(v))
		case fieldMaxTimestampMs:
			h.MaxTimestampMs = int64(v)
		case fieldProducerID:
			producerID = int64(v)
		case fieldProducerEpoch:
			epoch = int32(v)
		case fieldBaseSequence:
			seq = int32(v)
		case fieldTransactional:
			h.Transactional = v != 0
		case fieldControl:
			h.Control = v != 0
		default:
			return h, nil, corrupt("stored header: unexpected field %d", num)
		}
	}
	if producerID > 0 {
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = producerID, epoch, seq
	} else if producerID != 0 || epoch != 0 || seq != 0 {
		return h, nil, corrupt("stored header: producer fields without a producer id")
	}
	if h.RecordCount <= 0 {
		return h, nil, corrupt("stored header: record count %d", h.RecordCount)
	}
	if !validCompression(h.Compression) || h.Compression == sluicev1.Compression_COMPRESSION_UNSPECIFIED {
		return h, nil, corrupt("stored header: compression %d", h.Compression)
	}
	if h.TimestampType != sluicev1.TimestampType_TIMESTAMP_TYPE_CREATE_TIME &&
		h.TimestampType != sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME {
		return h, nil, corrupt("stored header: timestamp type %d", h.TimestampType)
	}
	if len(b) == 0 {
		return h, nil, corrupt("stored batch: no records")
	}
	num, typ, n := protowire.ConsumeTag(b)
	if typ != protowire.BytesType {
		return h, nil, corrupt("stored batch: records wire type %d", typ)
	}
	if isCompressed(h.Compression) {
		if num != fieldRecordsData {
			return h, nil, corrupt("stored batch: compressed records not in records_data")
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 || n+m != len(b) {
			return h, nil, corrupt("stored batch: records_data framing")
		}
		return h, v, nil
	}
	if num != fieldRecords {
		return h, nil, corrupt("stored batch: plain records not as field 15")
	}
	return h, b, nil
}

// Splice builds the RecordBatch a fetch response carries for a stored batch. The stored
// bytes become the message's unknown fields, so proto.Marshal emits them verbatim after
// base_offset and leader_epoch: an uncompressed batch arrives as plain `records`, a
// compressed one as `records_data`, and nothing is re-encoded. The returned message
// aliases stored; do not modify stored while it is in use.
//
// With RECORD_FORMAT_DECOMPRESSED a compressed batch is decompressed and re-framed as
// plain records with compression NONE and the CRC of the decompressed bytes.
func Splice(stored []byte, baseOffset, leaderEpoch int64, f sluicev1.RecordFormat) (*sluicev1.RecordBatch, error) {
	h, recs, err := parseStored(stored)
	if err != nil {
		return nil, err
	}
	rb := &sluicev1.RecordBatch{BaseOffset: baseOffset, LeaderEpoch: leaderEpoch}
	if f == sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED && isCompressed(h.Compression) {
		buf := getScratch()
		defer putScratch(buf)
		plain, err := decompress((*buf)[:0], h.Compression, recs, HardMaxDecompressedBytes, false)
		if err != nil {
			return nil, err
		}
		*buf = plain
		res, err := scanRecords(plain)
		if err != nil {
			return nil, err
		}
		if res.count != int(h.RecordCount) {
			return nil, corrupt("record_count %d, found %d records", h.RecordCount, res.count)
		}
		h.Compression = sluicev1.Compression_COMPRESSION_NONE
		h.CRC = CRC(plain)
		out := make([]byte, 0, headerSize(&h)+len(plain))
		out = appendHeader(out, &h)
		out = append(out, plain...)
		stored = out
	}
	rb.ProtoReflect().SetUnknown(stored)
	return rb, nil
}
