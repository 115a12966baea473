package clients_test

import (
	"fmt"
	"testing"

	"google.golang.org/grpc"

	"github.com/sluicehq/sluice/clients"
	"github.com/sluicehq/sluice/internal/h2test"
)

// TestClientFlowControlWindowsAreStatic: a producer and a consumer receiving
// answers one small batch at a time send no pings. With gRPC's dynamic
// windows a connection pings the server once per round trip while data
// arrives (to estimate the bandwidth-delay product), which doubled the
// frames of a produce or consume stream of small batches.
func TestClientFlowControlWindowsAreStatic(t *testing.T) {
	f := newFake(t, 1)
	f.addTopic("t", 1)
	var rec h2test.Recorder
	dial := clients.DialOptions(grpc.WithContextDialer(rec.Dialer()))
	p := newProducer(t, f, dial)
	c := newConsumer(t, f, dial)
	ctx := guard(t)
	if err := c.AssignTopic(ctx, "t", clients.AtStart()); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		pollN(t, ctx, c, 1)
	}
	sent, _, err := rec.Pings()
	if err != nil {
		t.Fatal(err)
	}
	if sent != 0 {
		t.Fatalf("the clients sent %d pings while producing and consuming 50 records one at a time, want none", sent)
	}
}
