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
//	}
//	message RaftEnvelope {
//	  uint64 group_id = 1;                // 0: node liveness
//	  raftpb.Message message = 2;
//	  bool quiesce = 3;
//	}
const (
	frameFrom     = 1
	frameMessages = 2
	envGroup      = 1
	envMessage    = 2
	envQuiesce    = 3
)

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

// decodeFrame decodes a frame. Unknown fields are skipped.
func decodeFrame(b []byte) (from uint64, msgs []replication.GroupMessage, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, errBadFrame
		}
		b = b[n:]
		switch {
		case num == frameFrom && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, nil, errBadFrame
			}
			from, b = v, b[n:]
		case num == frameMessages && typ == protowire.BytesType:
			env, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, nil, errBadFrame
			}
			b = b[n:]
			m, err := decodeEnvelope(env)
			if err != nil {
				return 0, nil, err
			}
			msgs = append(msgs, m)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, nil, errBadFrame
			}
			b = b[n:]
		}
	}
	if from == 0 {
		return 0, nil, fmt.Errorf("%w: no sender", errBadFrame)
	}
	return from, msgs, nil
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
