package grpctransport

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/replication"
)

// A frame is one batch of messages from one node, encoded in protobuf wire
// format so that a generated type with this shape decodes it unchanged:
//
//	message RaftFrame {
//	  uint64 from = 1;                    // sending node id
//	  repeated RaftEnvelope messages = 2;
//	  repeated RaftChunk chunks = 3;      // a frame of chunks carries one
//	}
//	message RaftEnvelope {
//	  uint64 group_id = 1;                // 0: node liveness
//	  raftpb.Message message = 2;
//	  bool quiesce = 3;
//	}
//	// A piece of one marshalled raftpb.Message larger than chunkThreshold.
//	message RaftChunk {
//	  uint64 group_id = 1;
//	  uint64 id = 2;                      // the sender's number for the message
//	  uint64 offset = 3;                  // of data in the marshalled message
//	  uint64 total = 4;                   // size of the marshalled message
//	  bytes data = 5;
//	}
const (
	frameFrom     = 1
	frameMessages = 2
	frameChunks   = 3
	envGroup      = 1
	envMessage    = 2
	envQuiesce    = 3
	chunkGroup    = 1
	chunkID       = 2
	chunkOffset   = 3
	chunkTotal    = 4
	chunkData     = 5
)

// chunkThreshold is the largest message sent whole; a larger one (a
// snapshot of a partition with many producers, a record batch over
// frameTarget) is cut into chunks of at most chunkThreshold bytes, so no
// frame is much larger than frameTarget whatever the message. A variable
// only so that tests can make ordinary snapshots travel in chunks; it is
// set before any transport starts.
var chunkThreshold = frameTarget

// maxChunkedMessage bounds the message a receiver reassembles.
const maxChunkedMessage = 1 << 30

// chunk is one piece of a message sent in chunks. On the sending side data
// is a slice of the marshalled message; decodeChunk gives it its own copy,
// since the received frame's buffer is reused once decoded.
type chunk struct {
	group, id, offset, total uint64
	data                     []byte
}

var errBadFrame = errors.New("grpctransport: malformed frame")

// encodeFrame appends the frame of msgs from node to buf. Each message is
// marshalled once, straight into buf: its size is computed first (and
// cached in the message for the marshal that follows), so the envelope's
// length prefix can be written ahead of it without a temporary buffer.
func encodeFrame(buf []byte, from uint64, msgs []replication.GroupMessage) ([]byte, error) {
	buf = protowire.AppendTag(buf, frameFrom, protowire.VarintType)
	buf = protowire.AppendVarint(buf, from)
	for _, m := range msgs {
		var err error
		if buf, err = appendEnvelope(buf, m, proto.Size(m.Message)); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// cachedSize marshals with the size proto.Size just stored in the message.
var cachedSize = proto.MarshalOptions{UseCachedSize: true}

// appendEnvelope appends one envelope of m, whose marshalled size is size.
func appendEnvelope(buf []byte, m replication.GroupMessage, size int) ([]byte, error) {
	buf = protowire.AppendTag(buf, frameMessages, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(envelopeSize(m, size)))
	buf = protowire.AppendTag(buf, envGroup, protowire.VarintType)
	buf = protowire.AppendVarint(buf, m.GroupID)
	buf = protowire.AppendTag(buf, envMessage, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(size))
	start := len(buf)
	buf, err := cachedSize.MarshalAppend(buf, m.Message)
	if err != nil {
		return nil, err
	}
	if len(buf)-start != size {
		return nil, fmt.Errorf("grpctransport: message changed while marshalled (%d bytes, sized %d)", len(buf)-start, size)
	}
	if m.Quiesce {
		buf = protowire.AppendTag(buf, envQuiesce, protowire.VarintType)
		buf = protowire.AppendVarint(buf, 1)
	}
	return buf, nil
}

// envelopeSize is the encoded size of m's envelope (without its own tag
// and length) when its message marshals to size bytes.
func envelopeSize(m replication.GroupMessage, size int) int {
	n := protowire.SizeTag(envGroup) + protowire.SizeVarint(m.GroupID) +
		protowire.SizeTag(envMessage) + protowire.SizeBytes(size)
	if m.Quiesce {
		n += protowire.SizeTag(envQuiesce) + protowire.SizeVarint(1)
	}
	return n
}

// frameEntrySize is the encoded size of m's envelope inside a frame.
func frameEntrySize(m replication.GroupMessage, size int) int {
	return protowire.SizeTag(frameMessages) + protowire.SizeBytes(envelopeSize(m, size))
}

// chunkHead encodes a frame of one chunk from node from up to its data,
// which follows it on the wire unchanged (chunkFrame).
func chunkHead(from uint64, c chunk) []byte {
	body := protowire.SizeTag(chunkGroup) + protowire.SizeVarint(c.group) +
		protowire.SizeTag(chunkID) + protowire.SizeVarint(c.id) +
		protowire.SizeTag(chunkOffset) + protowire.SizeVarint(c.offset) +
		protowire.SizeTag(chunkTotal) + protowire.SizeVarint(c.total) +
		protowire.SizeTag(chunkData) + protowire.SizeBytes(len(c.data))
	buf := make([]byte, 0, 64)
	buf = protowire.AppendTag(buf, frameFrom, protowire.VarintType)
	buf = protowire.AppendVarint(buf, from)
	buf = protowire.AppendTag(buf, frameChunks, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(body))
	buf = protowire.AppendTag(buf, chunkGroup, protowire.VarintType)
	buf = protowire.AppendVarint(buf, c.group)
	buf = protowire.AppendTag(buf, chunkID, protowire.VarintType)
	buf = protowire.AppendVarint(buf, c.id)
	buf = protowire.AppendTag(buf, chunkOffset, protowire.VarintType)
	buf = protowire.AppendVarint(buf, c.offset)
	buf = protowire.AppendTag(buf, chunkTotal, protowire.VarintType)
	buf = protowire.AppendVarint(buf, c.total)
	buf = protowire.AppendTag(buf, chunkData, protowire.BytesType)
	return protowire.AppendVarint(buf, uint64(len(c.data)))
}

// decodeFrame decodes a frame. Unknown fields are skipped.
func decodeFrame(b []byte) (receivedFrame, error) {
	var f receivedFrame
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return f, errBadFrame
		}
		b = b[n:]
		switch {
		case num == frameFrom && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return f, errBadFrame
			}
			f.from, b = v, b[n:]
		case (num == frameMessages || num == frameChunks) && typ == protowire.BytesType:
			body, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return f, errBadFrame
			}
			b = b[n:]
			if num == frameChunks {
				c, err := decodeChunk(body)
				if err != nil {
					return f, err
				}
				f.chunks = append(f.chunks, c)
				continue
			}
			m, err := decodeEnvelope(body)
			if err != nil {
				return f, err
			}
			f.msgs = append(f.msgs, m)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return f, errBadFrame
			}
			b = b[n:]
		}
	}
	if f.from == 0 {
		return f, fmt.Errorf("%w: no sender", errBadFrame)
	}
	return f, nil
}

// decodeChunk decodes a chunk, copying its data. A chunk must lie inside
// its message, which must be at most maxChunkedMessage bytes.
func decodeChunk(b []byte) (chunk, error) {
	var c chunk
	var data []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return c, errBadFrame
		}
		b = b[n:]
		if num == chunkData && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return c, errBadFrame
			}
			data, b = v, b[n:]
			continue
		}
		if typ != protowire.VarintType || num < chunkGroup || num > chunkTotal {
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return c, errBadFrame
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return c, errBadFrame
		}
		b = b[n:]
		switch num {
		case chunkGroup:
			c.group = v
		case chunkID:
			c.id = v
		case chunkOffset:
			c.offset = v
		case chunkTotal:
			c.total = v
		}
	}
	if len(data) == 0 || c.total > maxChunkedMessage || c.offset > c.total || uint64(len(data)) > c.total-c.offset {
		return c, fmt.Errorf("%w: chunk [%d, +%d) of a %d-byte message", errBadFrame, c.offset, len(data), c.total)
	}
	c.data = append([]byte(nil), data...)
	return c, nil
}

// reassembly collects the chunks of the message a sender is sending in
// chunks. One stream carries a sender's frames in order, so each stream
// reassembles one message at a time; a chunk that does not continue it
// (the stream broke and a new message began) starts over or is dropped,
// and raft resends what was lost.
type reassembly struct {
	group, id, total uint64
	buf              []byte // nil: no message in progress
}

// add takes a chunk and returns the message it completes, if any.
func (a *reassembly) add(c chunk) (replication.GroupMessage, bool, error) {
	if c.offset == 0 {
		a.group, a.id, a.total, a.buf = c.group, c.id, c.total, make([]byte, 0, min(c.total, uint64(4*chunkThreshold)))
	} else if a.buf == nil || c.group != a.group || c.id != a.id || c.total != a.total || c.offset != uint64(len(a.buf)) {
		a.buf = nil
		return replication.GroupMessage{}, false, nil
	}
	a.buf = append(a.buf, c.data...)
	if uint64(len(a.buf)) < a.total {
		return replication.GroupMessage{}, false, nil
	}
	raw := a.buf
	a.buf = nil
	msg := &raftpb.Message{}
	if err := proto.Unmarshal(raw, msg); err != nil {
		return replication.GroupMessage{}, false, fmt.Errorf("%w: chunked message: %w", errBadFrame, err)
	}
	return replication.GroupMessage{GroupID: a.group, Message: msg}, true, nil
}

func decodeEnvelope(b []byte) (replication.GroupMessage, error) {
	var m replication.GroupMessage
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, errBadFrame
		}
		b = b[n:]
		switch {
		case num == envGroup && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, errBadFrame
			}
			m.GroupID, b = v, b[n:]
		case num == envMessage && typ == protowire.BytesType:
			raw, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, errBadFrame
			}
			b = b[n:]
			msg := &raftpb.Message{}
			if err := proto.Unmarshal(raw, msg); err != nil {
				return m, fmt.Errorf("%w: %w", errBadFrame, err)
			}
			m.Message = msg
		case num == envQuiesce && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, errBadFrame
			}
			m.Quiesce, b = v != 0, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return m, errBadFrame
			}
			b = b[n:]
		}
	}
	if m.Message == nil {
		return m, fmt.Errorf("%w: envelope without message", errBadFrame)
	}
	return m, nil
}
