package coordinator

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Sequential member ids, so scripts assign deterministically.
	var n atomic.Int64
	newMemberID = func() string { return fmt.Sprintf("m%04d", n.Add(1)) }
	goleak.VerifyTestMain(m)
}

// rebuild writes g's state as the coordinator would, encodes and decodes
// the batch, and replays it into a new group: a coordinator failover.
func rebuild(t *testing.T, g *Group, now time.Time) *Group {
	t.Helper()
	var recs []*record
	recs = append(recs, g.stateRecords(map[string]bool{})...)
	for tp, c := range g.Offsets {
		recs = append(recs, &record{Type: recOffset, Group: g.ID, Topic: tp.Topic, Partition: tp.Partition, Offset: c.Offset, Metadata: c.Metadata, CommitTime: c.CommitTime})
	}
	data, err := encodeRecords(recs, now.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeRecords(data)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]*Group{}
	replay(groups, back, g.topics, now)
	ng := groups[g.ID]
	if ng == nil {
		t.Fatal("group lost in rebuild")
	}
	return ng
}
