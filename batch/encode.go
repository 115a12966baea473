package batch

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Builder accumulates records into the encoded form of a batch (field-15 entries), so a
// producer knows a batch's size as it grows. The zero Builder is ready to use. A Builder
// is not safe for concurrent use.
type Builder struct {
	buf   []byte
	count int32
	maxTs int64
}

// Append encodes r at the end of the batch. A record with a negative timestamp or a
// header key that is not valid UTF-8 is refused with ErrInvalid or ErrCorrupt.
func (b *Builder) Append(r *sluicev1.Record) error {
	if r.GetTimestampMs() < 0 {
		return invalid("records", "negative timestamp %d", r.GetTimestampMs())
	}
	n := len(b.buf)
	sz := proto.Size(r)
	b.buf = protowire.AppendTag(b.buf, fieldRecords, protowire.BytesType)
	b.buf = protowire.AppendVarint(b.buf, uint64(sz))
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b.buf, r)
	if err != nil {
		b.buf = b.buf[:n]
		return corrupt("record: %v", err)
	}
	b.buf = out
	b.count++
	if r.GetTimestampMs() > b.maxTs {
		b.maxTs = r.GetTimestampMs()
	}
	return nil
}

// RecordSize is the number of bytes r adds to a batch (uncompressed).
func RecordSize(r *sluicev1.Record) int {
	sz := proto.Size(r)
	return protowire.SizeTag(fieldRecords) + protowire.SizeVarint(uint64(sz)) + sz
}

// Len is the encoded size of the records so far, before compression.
func (b *Builder) Len() int { return len(b.buf) }

// Grow makes room for n more bytes of records, so a batch expected to reach a size is
// built without repeated reallocation.
func (b *Builder) Grow(n int) {
	if n > cap(b.buf)-len(b.buf) {
		nb := make([]byte, len(b.buf), len(b.buf)+n)
		copy(nb, b.buf)
		b.buf = nb
	}
}

// Adopt makes buf (its capacity; the contents do not matter) the buffer of an empty
// builder, so a producer reuses the buffer of a batch it is done with instead of
// allocating (and zeroing) a new one. It reports false, keeping its own buffer, when
// the builder is not empty or buf has less room than the builder has.
func (b *Builder) Adopt(buf []byte) bool {
	if b.count != 0 || len(b.buf) != 0 || cap(buf) <= cap(b.buf) {
		return false
	}
	b.buf = buf[:0]
	return true
}

// Count is the number of records so far.
func (b *Builder) Count() int { return int(b.count) }

// Reset empties the builder, keeping its buffer.
func (b *Builder) Reset() { b.buf, b.count, b.maxTs = b.buf[:0], 0, 0 }

// Finish returns the batch in the smart-client shape: records_data compressed with c,
// crc, record_count, compression and max_timestamp_ms set. The builder is reset; with no
// compression the batch takes over the builder's buffer.
func (b *Builder) Finish(c sluicev1.Compression) (*sluicev1.RecordBatch, error) {
	if !validCompression(c) {
		return nil, invalid("compression", "unknown codec %d", c)
	}
	if c == sluicev1.Compression_COMPRESSION_UNSPECIFIED {
		c = sluicev1.Compression_COMPRESSION_NONE
	}
	rb := &sluicev1.RecordBatch{RecordCount: b.count, Compression: c, MaxTimestampMs: b.maxTs}
	if isCompressed(c) {
		data, err := compress(nil, c, b.buf)
		if err != nil {
			return nil, err
		}
		rb.RecordsData = data
		b.Reset()
	} else {
		rb.RecordsData = b.buf
		b.buf, b.count, b.maxTs = nil, 0, 0
	}
	rb.Crc = CRC(rb.RecordsData)
	return rb, nil
}

// Encode builds a batch of records in the smart-client shape (see Builder.Finish).
func Encode(records []*sluicev1.Record, c sluicev1.Compression) (*sluicev1.RecordBatch, error) {
	if len(records) == 0 {
		return nil, invalid("records", "the batch has no records")
	}
	var b Builder
	b.buf = make([]byte, 0, encodedSize(records, 0))
	for _, r := range records {
		if err := b.Append(r); err != nil {
			return nil, err
		}
	}
	return b.Finish(c)
}
