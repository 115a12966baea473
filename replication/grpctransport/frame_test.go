package grpctransport

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/replication"
)

// TestNextFrameCutsAtTarget: nextFrame fills its buffer exactly, cuts
// before frameTarget, stops before a message over chunkThreshold (sent in
// chunks), encodes the same bytes as encodeFrame, and every other message
// ends up in exactly one frame.
func TestNextFrameCutsAtTarget(t *testing.T) {
	var msgs []replication.GroupMessage
	for i, size := range []int{100, 700 << 10, 700 << 10, 700 << 10, 1 << 20, 10, 0} {
		msgs = append(msgs, replication.GroupMessage{GroupID: uint64(i + 1), Quiesce: i%2 == 0,
			Message: &raftpb.Message{Type: raftpb.MsgApp.Enum(), To: new(uint64(2)), Index: new(uint64(i)),
				Entries: []*raftpb.Entry{{Index: new(uint64(i + 1)), Data: bytes.Repeat([]byte{byte(i)}, size)}}}})
	}
	var got []replication.GroupMessage
	rest := msgs
	for frames := 0; len(rest) > 0; frames++ {
		if frames > len(msgs) {
			t.Fatal("no progress")
		}
		buf, n, err := nextFrame(4, rest)
		if err != nil {
			t.Fatal(err)
		}
		if n < 1 || len(buf) != cap(buf) {
			t.Fatalf("frame of %d messages, %d of %d bytes used", n, len(buf), cap(buf))
		}
		if n > 1 && len(buf) > frameTarget {
			t.Fatalf("frame of %d messages is %d bytes, over the target", n, len(buf))
		}
		want, err := encodeFrame(nil, 4, rest[:n])
		if err != nil || !bytes.Equal(buf, want) {
			t.Fatalf("nextFrame and encodeFrame differ (%v)", err)
		}
		f, err := decodeFrame(buf)
		from, dec := f.from, f.msgs
		if err != nil || from != 4 || len(dec) != n {
			t.Fatalf("decode: from %d, %d msgs, %v", from, len(dec), err)
		}
		got = append(got, dec...)
		rest = rest[n:]
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d messages arrived, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if got[i].GroupID != msgs[i].GroupID || got[i].Quiesce != msgs[i].Quiesce ||
			got[i].Message.GetIndex() != msgs[i].Message.GetIndex() ||
			len(got[i].Message.GetEntries()[0].GetData()) != len(msgs[i].Message.GetEntries()[0].GetData()) {
			t.Fatalf("message %d differs", i)
		}
	}
}

// bigMessage is a MsgSnap whose snapshot data is size bytes of a pattern.
func bigMessage(group uint64, size int) replication.GroupMessage {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return replication.GroupMessage{GroupID: group, Message: &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: new(uint64(2)),
		Snapshot: &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(77)), Term: new(uint64(3))}}}}
}

// A message over chunkThreshold stops nextFrame and is not framed whole.
func TestNextFrameLeavesLargeMessages(t *testing.T) {
	small := replication.GroupMessage{GroupID: 1, Message: &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum()}}
	big := bigMessage(2, chunkThreshold+1)
	if _, n, err := nextFrame(1, []replication.GroupMessage{small, big, small}); err != nil || n != 1 {
		t.Fatalf("frame before the large message: %d messages, %v", n, err)
	}
	if buf, n, err := nextFrame(1, []replication.GroupMessage{big, small}); err != nil || n != 0 || buf != nil {
		t.Fatalf("large message first: %d messages, %d bytes, %v", n, len(buf), err)
	}
}

// The chunks of a message, decoded and reassembled in order, give back the
// message; a chunk that does not continue the message in progress drops it,
// and the next message starting at offset 0 still arrives.
func TestChunksReassemble(t *testing.T) {
	m := bigMessage(5, 5*chunkThreshold/2)
	data, err := proto.Marshal(m.Message)
	if err != nil {
		t.Fatal(err)
	}
	chunks := func(id uint64) []chunk {
		var out []chunk
		for off := 0; off < len(data); off += chunkThreshold {
			c := chunk{group: 5, id: id, offset: uint64(off), total: uint64(len(data)), data: data[off:min(off+chunkThreshold, len(data))]}
			f, err := decodeFrame(append(chunkHead(3, c), c.data...))
			if err != nil || f.from != 3 || len(f.msgs) != 0 || len(f.chunks) != 1 {
				t.Fatalf("chunk frame: %+v, %v", f, err)
			}
			out = append(out, f.chunks[0])
		}
		return out
	}
	var asm reassembly
	first := chunks(1)
	if len(first) != 3 {
		t.Fatalf("%d chunks, want 3", len(first))
	}
	// A broken run: the middle chunk is lost.
	for _, c := range []chunk{first[0], first[2]} {
		if _, ok, err := asm.add(c); ok || err != nil {
			t.Fatalf("incomplete message delivered (%v)", err)
		}
	}
	var got []replication.GroupMessage
	for _, c := range chunks(2) {
		msg, ok, err := asm.add(c)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, msg)
		}
	}
	if len(got) != 1 || got[0].GroupID != 5 || !proto.Equal(got[0].Message, m.Message) {
		t.Fatalf("reassembled %d messages, want the original one", len(got))
	}
	// A chunk outside its message is rejected by the decoder.
	bad := chunk{group: 5, id: 3, offset: 8, total: 10, data: []byte("xyz")}
	if _, err := decodeFrame(append(chunkHead(3, bad), bad.data...)); err == nil {
		t.Fatal("a chunk past its message's end was accepted")
	}
}
