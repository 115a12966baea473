package grpctransport

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluicehq/sluice/replication"
)

// TestNextFrameCutsAtTarget: nextFrame fills its buffer exactly, cuts
// before frameTarget (a larger message travels alone), encodes the same
// bytes as encodeFrame, and every message ends up in exactly one frame.
func TestNextFrameCutsAtTarget(t *testing.T) {
	var msgs []replication.GroupMessage
	for i, size := range []int{100, 700 << 10, 700 << 10, 700 << 10, 3 << 20, 10, 0} {
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
		from, dec, err := decodeFrame(buf)
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
