package clients_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/clients"
)

// TestRecycledBatchBuffersKeepRecords produces large batches one round after another,
// so later batches are encoded into the buffers of acknowledged ones, and checks that
// every record reads back as sent.
func TestRecycledBatchBuffersKeepRecords(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1, 1)
	p := newProducer(t, f)
	var sent []*clients.Record
	for round := range 6 {
		var recs []*clients.Record
		for i := range 200 {
			recs = append(recs, &clients.Record{Topic: "t", Key: fmt.Appendf(nil, "k%d-%d", round, i),
				Value: bytes.Repeat(fmt.Appendf(nil, "r%d v%d ", round, i), 128)})
		}
		if err := p.ProduceSync(guard(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, recs...)
	}
	cons := newConsumer(t, f)
	ctx := guard(t)
	if err := cons.AssignTopic(ctx, "t", clients.AtStart()); err != nil {
		t.Fatal(err)
	}
	got := pollN(t, ctx, cons, len(sent))
	byKey := map[string]*clients.Record{}
	for _, r := range got {
		byKey[string(r.Key)] = r
	}
	for _, s := range sent {
		if r := byKey[string(s.Key)]; r == nil || !bytes.Equal(r.Value, s.Value) || r.Offset != s.Offset {
			t.Fatalf("sent %s at %d, consumed %+v", s.Key, s.Offset, r)
		}
	}
}
