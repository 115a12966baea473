package clients

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"

	"github.com/sluicehq/sluice/batch"
)

// Sending a batch without copying it. grpc's codec marshals a produce request into one
// buffer from its pool, which it zeroes first, copying the batch's records_data into it.
// produceCodec sends the request as three pieces instead: the encoding up to the
// records, the records themselves (the batch's own buffer, which nothing changes once
// the batch is built), and the encoding after them. The bytes on the wire are exactly
// proto.Marshal's.

// produceCodec is grpc's proto codec, except that it marshals produce requests around
// their batch's records_data.
type produceCodec struct{ encoding.CodecV2 }

// produceCall makes a call marshal its requests with produceCodec.
var produceCall = grpc.ForceCodecV2(produceCodec{encoding.GetCodecV2("proto")})

// minSplicedRecords is the smallest records_data sent as a piece of its own; smaller
// ones are cheaper to copy.
const minSplicedRecords = 4 << 10

// Field numbers on the path to RecordBatch.records_data.
const (
	streamRequestField = 1  // ProduceStreamRequest.request
	requestBatchField  = 4  // ProduceRequest.batch
	batchRecordsData   = 16 // RecordBatch.records_data, its last field
)

func (c produceCodec) Marshal(v any) (mem.BufferSlice, error) {
	var m proto.Message
	var path []protowire.Number
	var rb *sluicev1.RecordBatch
	switch r := v.(type) {
	case *sluicev1.ProduceStreamRequest:
		m, path, rb = r, []protowire.Number{streamRequestField, requestBatchField}, r.GetRequest().GetBatch()
	case *sluicev1.ProduceRequest:
		m, path, rb = r, []protowire.Number{requestBatchField}, r.GetBatch()
	default:
		return c.CodecV2.Marshal(v)
	}
	data := rb.GetRecordsData()
	if len(data) < minSplicedRecords || len(rb.ProtoReflect().GetUnknown()) > 0 {
		return c.CodecV2.Marshal(v)
	}
	enc, split, ok := marshalAround(m, path, len(data))
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	return mem.BufferSlice{mem.SliceBuffer(enc[:split]), mem.SliceBuffer(data), mem.SliceBuffer(enc[split:])}, nil
}

// marshalAround returns proto.Marshal(m) without the bytes of the records_data of the
// batch at path (n bytes long): they belong at enc[split].
func marshalAround(m proto.Message, path []protowire.Number, n int) (enc []byte, split int, ok bool) {
	s, err := proto.Marshal(withoutRecordsData(m.ProtoReflect(), path))
	if err != nil {
		return nil, 0, false
	}
	return around(s, path, n)
}

// withoutRecordsData returns a shallow copy of m in which the message at path has no
// records_data; m is not changed.
func withoutRecordsData(m protoreflect.Message, path []protowire.Number) proto.Message {
	c := m.New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case len(path) == 0 && fd.Number() == batchRecordsData:
		case len(path) > 0 && fd.Number() == path[0] && fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			c.Set(fd, protoreflect.ValueOfMessage(withoutRecordsData(v.Message(), path[1:]).ProtoReflect()))
		default:
			c.Set(fd, v)
		}
		return true
	})
	c.SetUnknown(m.GetUnknown())
	return c.Interface()
}

// around inserts the tag and length of an n-byte records_data at the end of the batch at
// path in s (the encoding without it), fixing the lengths of the messages holding it,
// and returns where the n bytes belong.
func around(s []byte, path []protowire.Number, n int) (enc []byte, split int, ok bool) {
	if len(path) == 0 {
		// s is a part of its parent's encoding: append to a copy.
		enc = protowire.AppendTag(s[:len(s):len(s)], batchRecordsData, protowire.BytesType)
		enc = protowire.AppendVarint(enc, uint64(n))
		return enc, len(enc), true
	}
	start, end, vstart, ok := batch.FindOnce(s, path[0])
	if !ok {
		return nil, 0, false
	}
	inner, isplit, ok := around(s[vstart:end], path[1:], n)
	if !ok {
		return nil, 0, false
	}
	enc = make([]byte, 0, len(s)+len(inner)-(end-vstart)+32)
	enc = append(enc, s[:start]...)
	enc = protowire.AppendTag(enc, path[0], protowire.BytesType)
	enc = protowire.AppendVarint(enc, uint64(len(inner)+n))
	split = len(enc) + isplit
	enc = append(enc, inner...)
	enc = append(enc, s[end:]...)
	return enc, split, true
}
