package coordinator

import (
	"testing"
	"time"
)

// FuzzDecodeRecords feeds arbitrary bytes to the __consumer_offsets
// decoder and replays whatever decodes: no panics.
func FuzzDecodeRecords(f *testing.F) {
	g := NewGroup("g", map[string]int32{"t": 2})
	_, _, _ = g.Join(JoinParams{InstanceID: "i", Sub: Subscription{Topics: []string{"t"}}}, time.Unix(0, 0))
	recs := g.stateRecords(map[string]bool{"gone": true})
	recs = append(recs, offsetRecords("g", []OffsetCommit{{TP: TP{"t", 1}, Offset: 5, Metadata: "x"}}, 1)...)
	recs = append(recs, &record{Type: recDelete, Group: "g"}, &record{Type: recLoad, Node: 1})
	for _, r := range recs {
		data, err := encodeRecords([]*record{r}, 1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := decodeRecords(data)
		if err != nil {
			return
		}
		replay(map[string]*Group{}, recs, map[string]int32{"t": 2}, time.Unix(0, 0))
	})
}
