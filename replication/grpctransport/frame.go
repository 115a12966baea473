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

// encodeFrame appends the frame of msgs from node to buf.
func encodeFrame(buf []byte, from uint64, msgs []replication.GroupMessage) ([]byte, error) {
	buf = protowire.AppendTag(buf, frameFrom, protowire.VarintType)
	buf = protowire.AppendVarint(buf, from)
	var env []byte
	for _, m := range msgs {
		raw, err := proto.Marshal(m.Message)
		if err != nil {
			return nil, err
		}
		env = env[:0]
		env = protowire.AppendTag(env, envGroup, protowire.VarintType)
		env = protowire.AppendVarint(env, m.GroupID)
		env = protowire.AppendTag(env, envMessage, protowire.BytesType)
		env = protowire.AppendBytes(env, raw)
		if m.Quiesce {
			env = protowire.AppendTag(env, envQuiesce, protowire.VarintType)
			env = protowire.AppendVarint(env, 1)
		}
		buf = protowire.AppendTag(buf, frameMessages, protowire.BytesType)
		buf = protowire.AppendBytes(buf, env)
	}
	return buf, nil
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
