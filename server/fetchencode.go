package server

import (
	"errors"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// A Fetch response is sent without copying its batches: encodeFetchResponse writes
// the protobuf envelope (tags, lengths, the partitions' fields, each batch's
// base_offset and leader_epoch) by hand and puts the stored batch bytes, which a
// spliced batch carries as its unknown fields, into the message as references to the
// read buffers they were read into. The read buffers go back to servePool when grpc has
// freed every reference (after the transport wrote them, or when the send failed).
// The bytes are those proto.Marshal gives for the same message.

// leaseRefs counts the references a sent message holds to its read lease. It is the
// mem.BufferPool of every buffer that aliases the lease: grpc "returns" each one to it
// when done, and the last return releases the lease.
type leaseRefs struct {
	n     atomic.Int32
	lease *readLease
}

func (r *leaseRefs) Get(int) *[]byte { panic("server: leaseRefs hands out no buffers") }

func (r *leaseRefs) Put(*[]byte) {
	if r.n.Add(-1) == 0 && r.lease != nil {
		r.lease.release()
	}
}

// fetchEncoder gathers the envelope bytes and the aliased pieces between them.
type fetchEncoder struct {
	env    []byte
	pieces []piece
	refs   *leaseRefs
}

// piece is env[start:end], followed by alias when it is non-empty.
type piece struct {
	start, end int
	alias      []byte
}

// encodeFetchResponse returns resp encoded as a list of buffers; l (nil: none) is
// released when grpc frees the last of them.
func encodeFetchResponse(resp *sluicev1.FetchResponse, l *readLease) (mem.BufferSlice, error) {
	refs := newLeaseRefs(l) // the encoder's own reference, dropped below
	defer refs.Put(nil)
	e := &fetchEncoder{refs: refs}
	if err := e.response(resp); err != nil {
		return nil, err
	}
	return e.finish(), nil
}

// newLeaseRefs returns the references to l, one held by the caller.
func newLeaseRefs(l *readLease) *leaseRefs {
	r := &leaseRefs{lease: l}
	r.n.Store(1)
	return r
}

// encodeConsumeBatch returns a ConsumeResponse carrying a batch encoded as a list of
// buffers, referencing the stored bytes through refs, on which the caller holds a
// reference until the message is encoded.
func encodeConsumeBatch(m *sluicev1.ConsumeResponse, refs *leaseRefs) (mem.BufferSlice, error) {
	cb := m.GetBatch()
	e := &fetchEncoder{refs: refs}
	e.env = protowire.AppendTag(e.env, 1, protowire.BytesType)
	e.env = protowire.AppendVarint(e.env, uint64(consumedBatchSize(cb)))
	if !utf8.ValidString(cb.Topic) {
		return nil, errTopicUTF8
	}
	if cb.Topic != "" {
		e.env = protowire.AppendTag(e.env, 1, protowire.BytesType)
		e.env = protowire.AppendString(e.env, cb.Topic)
	}
	e.env = appendVarintField(e.env, 2, uint64(int64(cb.Partition)))
	if cb.Batch != nil {
		e.env = protowire.AppendTag(e.env, 3, protowire.BytesType)
		e.env = protowire.AppendVarint(e.env, uint64(batchSize(cb.Batch)))
		if err := e.batch(cb.Batch); err != nil {
			return nil, err
		}
	}
	e.env = appendVarintField(e.env, 4, uint64(cb.HighWatermark))
	e.raw(cb.ProtoReflect().GetUnknown())
	e.raw(m.ProtoReflect().GetUnknown())
	return e.finish(), nil
}

func consumedBatchSize(m *sluicev1.ConsumedBatch) int {
	n := 0
	if m.Topic != "" {
		n += lenFieldSize(1, len(m.Topic))
	}
	n += varintFieldSize(2, uint64(int64(m.Partition)))
	if m.Batch != nil {
		n += lenFieldSize(3, batchSize(m.Batch))
	}
	n += varintFieldSize(4, uint64(m.HighWatermark))
	return n + len(m.ProtoReflect().GetUnknown())
}

// finish returns the envelope and the referenced pieces as grpc sends them.
func (e *fetchEncoder) finish() mem.BufferSlice {
	start := 0
	if n := len(e.pieces); n > 0 {
		start = e.pieces[n-1].end
	}
	e.pieces = append(e.pieces, piece{start: start, end: len(e.env)})
	out := make(mem.BufferSlice, 0, 2*len(e.pieces))
	for _, p := range e.pieces {
		if p.end > p.start {
			out = append(out, mem.SliceBuffer(e.env[p.start:p.end:p.end]))
		}
		if len(p.alias) > 0 {
			a := p.alias[:len(p.alias):len(p.alias)]
			e.refs.n.Add(1)
			out = append(out, mem.NewBuffer(&a, e.refs))
		}
	}
	return out
}

// raw adds b to the message: copied when small (grpc would not count a reference to
// it), else referenced.
func (e *fetchEncoder) raw(b []byte) {
	if mem.IsBelowBufferPoolingThreshold(len(b)) {
		e.env = append(e.env, b...)
		return
	}
	start := 0
	if n := len(e.pieces); n > 0 {
		start = e.pieces[n-1].end
	}
	e.pieces = append(e.pieces, piece{start: start, end: len(e.env), alias: b})
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func varintFieldSize(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func lenFieldSize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func boolVarint(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

var errTopicUTF8 = errors.New("server: topic name is not valid UTF-8")

func (e *fetchEncoder) response(m *sluicev1.FetchResponse) error {
	if !utf8.ValidString(m.Topic) {
		return errTopicUTF8
	}
	if m.Topic != "" {
		e.env = protowire.AppendTag(e.env, 1, protowire.BytesType)
		e.env = protowire.AppendString(e.env, m.Topic)
	}
	for _, fp := range m.Partitions {
		e.env = protowire.AppendTag(e.env, 2, protowire.BytesType)
		e.env = protowire.AppendVarint(e.env, uint64(partitionSize(fp)))
		if err := e.partition(fp); err != nil {
			return err
		}
	}
	e.raw(m.ProtoReflect().GetUnknown())
	return nil
}

func partitionSize(m *sluicev1.FetchedPartition) int {
	n := varintFieldSize(1, uint64(int64(m.Partition)))
	for _, rb := range m.Batches {
		n += lenFieldSize(2, batchSize(rb))
	}
	n += varintFieldSize(3, uint64(m.HighWatermark))
	n += varintFieldSize(4, uint64(m.LastStableOffset))
	n += varintFieldSize(5, uint64(m.LogStartOffset))
	if m.Error != nil {
		n += lenFieldSize(6, proto.Size(m.Error))
	}
	return n + len(m.ProtoReflect().GetUnknown())
}

func (e *fetchEncoder) partition(m *sluicev1.FetchedPartition) error {
	e.env = appendVarintField(e.env, 1, uint64(int64(m.Partition)))
	for _, rb := range m.Batches {
		e.env = protowire.AppendTag(e.env, 2, protowire.BytesType)
		e.env = protowire.AppendVarint(e.env, uint64(batchSize(rb)))
		if err := e.batch(rb); err != nil {
			return err
		}
	}
	e.env = appendVarintField(e.env, 3, uint64(m.HighWatermark))
	e.env = appendVarintField(e.env, 4, uint64(m.LastStableOffset))
	e.env = appendVarintField(e.env, 5, uint64(m.LogStartOffset))
	if m.Error != nil {
		e.env = protowire.AppendTag(e.env, 6, protowire.BytesType)
		e.env = protowire.AppendVarint(e.env, uint64(proto.Size(m.Error)))
		var err error
		if e.env, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(e.env, m.Error); err != nil {
			return err
		}
	}
	e.raw(m.ProtoReflect().GetUnknown())
	return nil
}

// batchSize is the encoded size of a RecordBatch; a spliced batch has only
// base_offset, leader_epoch and the stored bytes.
func batchSize(m *sluicev1.RecordBatch) int {
	n := varintFieldSize(1, uint64(m.BaseOffset)) +
		varintFieldSize(2, uint64(int64(m.RecordCount))) +
		varintFieldSize(3, uint64(int64(m.Compression))) +
		varintFieldSize(4, uint64(int64(m.TimestampType))) +
		varintFieldSize(5, uint64(m.MaxTimestampMs)) +
		varintFieldSize(6, uint64(m.ProducerId)) +
		varintFieldSize(7, uint64(int64(m.ProducerEpoch))) +
		varintFieldSize(8, uint64(int64(m.BaseSequence))) +
		varintFieldSize(9, boolVarint(m.Transactional)) +
		varintFieldSize(10, boolVarint(m.Control)) +
		varintFieldSize(12, uint64(m.LeaderEpoch))
	if m.Crc != 0 {
		n += protowire.SizeTag(11) + 4
	}
	for _, r := range m.Records {
		n += lenFieldSize(15, proto.Size(r))
	}
	if len(m.RecordsData) > 0 {
		n += lenFieldSize(16, len(m.RecordsData))
	}
	return n + len(m.ProtoReflect().GetUnknown())
}

func (e *fetchEncoder) batch(m *sluicev1.RecordBatch) error {
	b := e.env
	b = appendVarintField(b, 1, uint64(m.BaseOffset))
	b = appendVarintField(b, 2, uint64(int64(m.RecordCount)))
	b = appendVarintField(b, 3, uint64(int64(m.Compression)))
	b = appendVarintField(b, 4, uint64(int64(m.TimestampType)))
	b = appendVarintField(b, 5, uint64(m.MaxTimestampMs))
	b = appendVarintField(b, 6, uint64(m.ProducerId))
	b = appendVarintField(b, 7, uint64(int64(m.ProducerEpoch)))
	b = appendVarintField(b, 8, uint64(int64(m.BaseSequence)))
	b = appendVarintField(b, 9, boolVarint(m.Transactional))
	b = appendVarintField(b, 10, boolVarint(m.Control))
	if m.Crc != 0 {
		b = protowire.AppendTag(b, 11, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, m.Crc)
	}
	b = appendVarintField(b, 12, uint64(m.LeaderEpoch))
	for _, r := range m.Records {
		b = protowire.AppendTag(b, 15, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(r)))
		var err error
		if b, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(b, r); err != nil {
			return err
		}
	}
	e.env = b
	if len(m.RecordsData) > 0 {
		e.env = protowire.AppendTag(e.env, 16, protowire.BytesType)
		e.env = protowire.AppendVarint(e.env, uint64(len(m.RecordsData)))
		e.raw(m.RecordsData)
	}
	e.raw(m.ProtoReflect().GetUnknown())
	return nil
}
