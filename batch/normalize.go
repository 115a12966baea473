package batch

import (
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// DefaultMaxBytes is Kafka's default max.message.bytes, used when Limits.MaxBytes is 0.
const DefaultMaxBytes = 1048588

// Limits are the partition's rules for Normalize.
type Limits struct {
	// MaxBytes bounds the stored size of a batch (the topic's max.message.bytes);
	// 0 means DefaultMaxBytes.
	MaxBytes int
	// LogAppendTimeMs, when not 0, stamps the batch with log-append time: its timestamp
	// type becomes LOG_APPEND_TIME and max_timestamp_ms this time. 0 keeps create time.
	LogAppendTimeMs int64
	// NowMs is the time the batch was received, for records without a timestamp;
	// 0 means time.Now().
	NowMs int64
	// MaxDecompressedBytes bounds what a compressed batch may decompress to (a guard
	// against decompression bombs); 0 means max(4×MaxBytes, 32 MiB). Never more than
	// HardMaxDecompressedBytes.
	MaxDecompressedBytes int
}

func (l *Limits) maxBytes() int {
	if l.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return l.MaxBytes
}

func (l *Limits) maxDecompressed() int {
	n := l.MaxDecompressedBytes
	if n <= 0 {
		n = max(4*l.maxBytes(), 32<<20)
	}
	return min(n, HardMaxDecompressedBytes)
}

// Normalize validates a produced batch and builds its stored form; h describes it.
//
// It checks everything the server must before a batch may be stored: base_offset is 0,
// control is not set, producer fields are consistent, the codec is known, exactly one of
// records and records_data is set, record_count matches the records found (a compressed
// batch is decompressed, within Limits.MaxDecompressedBytes, to count them), the CRC
// matches, every record decodes as a sluicev1.Record, timestamps are not negative, and the
// stored size is within Limits.MaxBytes. Errors are ErrCorrupt, *InvalidError (ErrInvalid)
// or *TooLargeError.
//
// The smart-client shape (records_data) costs one allocation, the stored bytes,
// whatever the number of records; the records shape is encoded once here.
func Normalize(b *sluicev1.RecordBatch, l Limits) (stored []byte, h Header, err error) {
	return NormalizeFramed(b, l, 0)
}

// NormalizeFramed is Normalize leaving reserve bytes free in front of the
// stored form, in the same allocation: framed[reserve:] is the stored form and
// framed[:reserve] (zeros) is for the caller's own header, so a caller that stores
// the batch behind a header of its own builds it without copying the batch.
func NormalizeFramed(b *sluicev1.RecordBatch, l Limits, reserve int) (framed []byte, h Header, err error) {
	return normalize(b, l, reserve, nil)
}

// normalize is NormalizeFramed, building an uncompressed batch in room when
// it is not nil (see NormalizeFramedIn).
func normalize(b *sluicev1.RecordBatch, l Limits, reserve int, room []byte) (framed []byte, h Header, err error) {
	if reserve < 0 {
		reserve = 0
	}
	if b == nil {
		return nil, h, invalid("batch", "missing")
	}
	if b.BaseOffset != 0 {
		return nil, h, invalid("base_offset", "must be 0 on produce, got %d", b.BaseOffset)
	}
	if b.Control {
		return nil, h, invalid("control", "producers must not set it")
	}
	if !validCompression(b.Compression) {
		return nil, h, invalid("compression", "unknown codec %d", b.Compression)
	}
	h = Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Transactional: b.Transactional}
	switch {
	case b.ProducerId > 0:
		if b.ProducerEpoch < 0 {
			return nil, h, invalid("producer_epoch", "negative with producer id %d", b.ProducerId)
		}
		if b.BaseSequence < 0 {
			return nil, h, invalid("base_sequence", "negative with producer id %d", b.ProducerId)
		}
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = b.ProducerId, b.ProducerEpoch, b.BaseSequence
	case b.ProducerId < -1:
		return nil, h, invalid("producer_id", "%d", b.ProducerId)
	case b.Transactional:
		return nil, h, invalid("transactional", "requires a producer id")
	}
	now := l.NowMs
	if now == 0 {
		now = time.Now().UnixMilli()
	}
	hasRecords, hasData := len(b.Records) > 0, len(b.RecordsData) > 0
	switch {
	case hasRecords && hasData:
		return nil, h, invalid("records_data", "set together with records")
	case hasData:
		framed, err = normalizeData(b, l, &h, now, reserve, room)
	case hasRecords:
		framed, err = normalizeRecords(b, l, &h, now, reserve)
	default:
		return nil, h, invalid("records", "the batch has no records")
	}
	if err != nil {
		return nil, h, err
	}
	return framed, h, nil
}

func normalizeData(b *sluicev1.RecordBatch, l Limits, h *Header, now int64, reserve int, room []byte) ([]byte, error) {
	if b.RecordCount <= 0 {
		return nil, invalid("record_count", "must be positive with records_data, got %d", b.RecordCount)
	}
	data := b.RecordsData
	if crc := CRC(data); crc != b.Crc {
		return nil, corrupt("crc %08x, records_data has %08x", b.Crc, crc)
	}
	h.Compression = b.Compression
	if h.Compression == sluicev1.Compression_COMPRESSION_UNSPECIFIED {
		h.Compression = sluicev1.Compression_COMPRESSION_NONE
	}
	var res scanResult
	var err error
	if isCompressed(h.Compression) {
		buf := getScratch()
		plain, derr := decompress((*buf)[:0], h.Compression, data, l.maxDecompressed(), true)
		if derr == nil {
			*buf = plain
			res, err = scanRecords(plain)
		} else {
			err = derr
		}
		putScratch(buf)
	} else {
		res, err = scanRecords(data)
	}
	if err != nil {
		return nil, err
	}
	if res.count != int(b.RecordCount) {
		return nil, corrupt("record_count %d, found %d records", b.RecordCount, res.count)
	}
	h.RecordCount = b.RecordCount
	h.CRC = b.Crc
	stamp(h, res, l, now)
	size := headerSize(h) + len(data)
	if isCompressed(h.Compression) {
		size += protowire.SizeTag(fieldRecordsData) + protowire.SizeVarint(uint64(len(data)))
	}
	if max := l.maxBytes(); size > max {
		return nil, &TooLargeError{Size: size, Max: max}
	}
	hp := headPool.Get().(*[]byte)
	head := append((*hp)[:0], make([]byte, reserve)...)
	head = appendHeader(head, h)
	if isCompressed(h.Compression) {
		head = protowire.AppendTag(head, fieldRecordsData, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(len(data)))
	}
	out := inRoom(room, head, data)
	if out == nil {
		// Appending the records to the head (full: the append must allocate)
		// allocates the result without zeroing it first; make would clear the
		// whole batch, then copy over it.
		out = append(head[:len(head):len(head)], data...)
	}
	*hp = head[:0]
	headPool.Put(hp)
	return out, nil
}

// headPool holds the buffers normalizeData builds a stored header in
// before it appends the records to it.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func normalizeRecords(b *sluicev1.RecordBatch, l Limits, h *Header, now int64, reserve int) ([]byte, error) {
	if b.RecordCount != 0 && int(b.RecordCount) != len(b.Records) {
		return nil, corrupt("record_count %d, found %d records", b.RecordCount, len(b.Records))
	}
	for i, r := range b.Records {
		if r == nil {
			return nil, invalid("records", "record %d is null", i)
		}
		if r.TimestampMs < 0 {
			return nil, invalid("records", "record %d has a negative timestamp", i)
		}
	}
	if b.Crc != 0 {
		// The checksum covers the records as sent, before any stamping.
		plain, err := encodeRecords(nil, b.Records, 0)
		if err != nil {
			return nil, err
		}
		if crc := CRC(plain); crc != b.Crc {
			return nil, corrupt("crc %08x, records have %08x", b.Crc, crc)
		}
	}
	// Records without a timestamp get the time the batch was received; the records shape
	// is re-encoded here anyway, so this costs nothing extra.
	h.Compression = sluicev1.Compression_COMPRESSION_NONE
	hdrMax := headerSize(&Header{RecordCount: int32(len(b.Records)), Compression: 1, TimestampType: 1,
		MaxTimestampMs: -1, ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch,
		BaseSequence: h.BaseSequence, Transactional: h.Transactional, CRC: 1})
	hdrMax += reserve
	recs, err := encodeRecords(make([]byte, hdrMax, hdrMax+encodedSize(b.Records, now)), b.Records, now)
	if err != nil {
		return nil, err
	}
	body := recs[hdrMax:]
	res, err := scanRecords(body)
	if err != nil {
		return nil, err
	}
	h.RecordCount = int32(res.count)
	h.CRC = CRC(body)
	stamp(h, res, l, now)
	size := headerSize(h) + len(body)
	if max := l.maxBytes(); size > max {
		return nil, &TooLargeError{Size: size, Max: max}
	}
	// Write the header right before the records, in the room reserved for it.
	start := hdrMax - headerSize(h)
	appendHeader(recs[start:start], h)
	return recs[start-reserve:], nil
}

// stamp sets the timestamp type and max timestamp of h.
func stamp(h *Header, res scanResult, l Limits, now int64) {
	if l.LogAppendTimeMs != 0 {
		h.TimestampType = sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME
		h.MaxTimestampMs = l.LogAppendTimeMs
		return
	}
	h.TimestampType = sluicev1.TimestampType_TIMESTAMP_TYPE_CREATE_TIME
	h.MaxTimestampMs = res.maxTs
	if res.zeroTs && now > h.MaxTimestampMs {
		h.MaxTimestampMs = now
	}
}

// encodedSize is the size of records as field-15 entries, zero timestamps replaced by
// stampTs when it is not 0.
func encodedSize(records []*sluicev1.Record, stampTs int64) int {
	n := 0
	for _, r := range records {
		sz := proto.Size(r)
		if r.TimestampMs == 0 && stampTs != 0 {
			sz += protowire.SizeTag(recTimestamp) + protowire.SizeVarint(uint64(stampTs))
		}
		n += protowire.SizeTag(fieldRecords) + protowire.SizeVarint(uint64(sz)) + sz
	}
	return n
}

// encodeRecords appends records as field-15 entries; with stampTs not 0, a record
// without a timestamp is encoded with stampTs (appended as its field 4, which proto3
// leaves out for 0).
func encodeRecords(dst []byte, records []*sluicev1.Record, stampTs int64) ([]byte, error) {
	opts := proto.MarshalOptions{UseCachedSize: true}
	for _, r := range records {
		sz := proto.Size(r)
		extra := 0
		if r.TimestampMs == 0 && stampTs != 0 {
			extra = protowire.SizeTag(recTimestamp) + protowire.SizeVarint(uint64(stampTs))
		}
		dst = protowire.AppendTag(dst, fieldRecords, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(sz+extra))
		var err error
		if dst, err = opts.MarshalAppend(dst, r); err != nil {
			return nil, corrupt("record: %v", err)
		}
		if extra != 0 {
			dst = protowire.AppendTag(dst, recTimestamp, protowire.VarintType)
			dst = protowire.AppendVarint(dst, uint64(stampTs))
		}
	}
	return dst, nil
}
