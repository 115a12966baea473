package server

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"sync"
	"weak"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"

	"github.com/sluicehq/sluice/batch"
)

// Decoding a produce request without copying its records.
//
// proto.Unmarshal copies every bytes field, so a produced batch's
// records_data used to be copied twice after grpc gathered the message:
// into the RecordBatch, then into the stored form. unmarshalProduce gathers
// the message into a buffer of its own and leaves records_data aliasing it:
// the rest of the message (a few dozen bytes: topic, batch header) is
// decoded by proto.Unmarshal from a copy without the records_data field,
// and records_data is set to the bytes in the gathered buffer afterwards.
// The result equals proto.Unmarshal's, error or not: the path to
// records_data is only taken when each field on it occurs once with the
// bytes wire type and the wire form walks cleanly; anything else is
// decoded by proto.Unmarshal as before.
//
// The gathered buffer starts with produceHeadroom spare bytes, and the bytes
// in front of records_data (the spare ones and the request's own encoding,
// already decoded) are remembered for the batch (keepRoom): prepareProduce
// builds the replication entry there (batch.NormalizeFramedIn), so the
// records reach the log without another copy.

// Field numbers on the path to RecordBatch.records_data.
const (
	streamRequestField = 1  // ProduceStreamRequest.request
	requestBatchField  = 4  // ProduceRequest.batch
	batchRecordsData   = 16 // RecordBatch.records_data
)

// unmarshalProduceMessage decodes data into m when m is a produce request,
// aliasing records_data; ok is false for any other message.
func unmarshalProduceMessage(data mem.BufferSlice, v any) (ok bool, err error) {
	var rb *sluicev1.RecordBatch
	var buf []byte
	switch m := v.(type) {
	case *sluicev1.ProduceStreamRequest:
		buf = gather(data)
		err, rb = unmarshalProduceStream(buf[produceHeadroom:], m), m.GetRequest().GetBatch()
	case *sluicev1.ProduceRequest:
		buf = gather(data)
		err, rb = unmarshalProduceRequest(buf[produceHeadroom:], m), m.GetBatch()
	default:
		return false, nil
	}
	if err == nil && len(rb.GetRecordsData()) >= minRoomRecords {
		keepRoom(rb, buf)
	}
	return true, err
}

const (
	// produceHeadroom is room in front of a gathered produce request
	// for the replication entry's header and the stored batch header.
	produceHeadroom = 96
	// minRoomRecords is the smallest records_data built in place.
	minRoomRecords = 4 << 10
)

// gather copies data into one buffer, behind produceHeadroom spare bytes.
// bytes.Join allocates without zeroing first: every byte is written, and
// zeroing a large request's buffer cost as much as copying it.
func gather(data mem.BufferSlice) []byte {
	parts := make([][]byte, 0, 1+len(data))
	parts = append(parts, spareHeadroom[:])
	for _, d := range data {
		parts = append(parts, d.ReadOnlyData())
	}
	return bytes.Join(parts, nil)
}

// spareHeadroom fills the room in front of a gathered request; nothing
// reads it before the entry and batch headers overwrite it.
var spareHeadroom [produceHeadroom]byte

// rooms maps a decoded batch to the bytes in front of its records_data.
var rooms sync.Map // weak.Pointer[sluicev1.RecordBatch] -> []byte

// keepRoom remembers the bytes of buf in front of rb's records_data, which
// aliases buf, until takeRoom takes them or rb is collected. Nothing reads
// them again: the request was decoded from a copy without records_data.
func keepRoom(rb *sluicev1.RecordBatch, buf []byte) {
	d := rb.GetRecordsData()
	start := cap(buf) - cap(d) // d runs to the end of buf
	if start < 0 || start >= len(buf) || len(d) == 0 || &buf[:start+1][start] != &d[0] {
		return
	}
	wp := weak.Make(rb)
	rooms.Store(wp, buf[:start])
	runtime.AddCleanup(rb, func(wp weak.Pointer[sluicev1.RecordBatch]) { rooms.Delete(wp) }, wp)
}

// takeRoom returns the free bytes in front of rb's records_data, once; nil
// when there are none (or they were taken).
func takeRoom(rb *sluicev1.RecordBatch) []byte {
	if rb == nil {
		return nil
	}
	v, ok := rooms.LoadAndDelete(weak.Make(rb))
	if !ok {
		return nil
	}
	return v.([]byte)
}

// unmarshalProduceStream is proto.Unmarshal(b, m), with m's batch's
// records_data aliasing b.
func unmarshalProduceStream(b []byte, m *sluicev1.ProduceStreamRequest) error {
	return unmarshalAliased(b, m, []protowire.Number{streamRequestField, requestBatchField, batchRecordsData},
		func() *sluicev1.RecordBatch { return m.GetRequest().GetBatch() })
}

// unmarshalProduceRequest is proto.Unmarshal(b, m), with m's batch's
// records_data aliasing b.
func unmarshalProduceRequest(b []byte, m *sluicev1.ProduceRequest) error {
	return unmarshalAliased(b, m, []protowire.Number{requestBatchField, batchRecordsData},
		func() *sluicev1.RecordBatch { return m.GetBatch() })
}

// strippedPool holds the buffers a message without its records_data is
// built in; proto.Unmarshal copies what it keeps, so they are reused.
var strippedPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func unmarshalAliased(b []byte, m proto.Message, path []protowire.Number, batchOf func() *sluicev1.RecordBatch) error {
	bp := strippedPool.Get().(*[]byte)
	stripped, data, ok := stripPath((*bp)[:0], b, path)
	if !ok {
		strippedPool.Put(bp)
		return proto.Unmarshal(b, m)
	}
	err := proto.Unmarshal(stripped, m)
	*bp = stripped[:0]
	strippedPool.Put(bp)
	if err != nil {
		// Not reached for a message that walked cleanly, but the
		// error must be proto.Unmarshal's own on the whole message.
		return proto.Unmarshal(b, m)
	}
	rb := batchOf()
	if rb == nil {
		return proto.Unmarshal(b, m)
	}
	rb.RecordsData = data
	return nil
}

// stripPath appends to dst the message b without the field at path (each
// number a field of the message the previous one holds) and returns that
// field's bytes. ok is false unless every field on the path occurs exactly
// once in its message, with the bytes wire type, the last one is not
// empty, and every message on the path walks as valid wire form.
func stripPath(dst, b []byte, path []protowire.Number) (out, field []byte, ok bool) {
	start, end, vstart, ok := batch.FindOnce(b, path[0])
	if !ok {
		return dst, nil, false
	}
	value := b[vstart:end]
	if len(path) == 1 {
		if len(value) == 0 {
			return dst, nil, false
		}
		dst = append(dst, b[:start]...)
		return append(dst, b[end:]...), value, true
	}
	// Build the inner message first, after a gap, then move it behind
	// its new tag and length.
	dst = append(dst, b[:start]...)
	mark := len(dst)
	inner, field, ok := stripPath(dst, value, path[1:])
	if !ok {
		return dst[:mark], nil, false
	}
	innerLen := len(inner) - mark
	var head [2 * binary.MaxVarintLen64]byte
	h := protowire.AppendTag(head[:0], path[0], protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(innerLen))
	inner = append(inner, h...) // room
	copy(inner[mark+len(h):], inner[mark:mark+innerLen])
	copy(inner[mark:], h)
	return append(inner, b[end:]...), field, true
}
