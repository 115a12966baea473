package server_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/internal/h2test"
)

// TestServerFlowControlWindowsAreStatic: a node receiving a stream of small
// requests sends no pings. With gRPC's dynamic windows it pings the client
// once per round trip while data arrives (to estimate the bandwidth-delay
// product), which doubled the frames of every connection carrying small
// messages.
func TestServerFlowControlWindowsAreStatic(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "flow", 1, nil)
	produce(t, n, "flow", 0, records(1, "warm")) // the partition has a leader

	var rec h2test.Recorder
	cc, err := grpc.NewClient(n.Server.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(rec.Dialer()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	pc := sluicev1.NewProducerServiceClient(cc)
	for i := range 100 {
		if _, err := pc.Produce(ctxT(t), &sluicev1.ProduceRequest{
			Topic: "flow", Partition: proto.Int32(0), Batch: &sluicev1.RecordBatch{Records: records(1, "r")},
		}); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	_, received, err := rec.Pings()
	if err != nil {
		t.Fatal(err)
	}
	if received != 0 {
		t.Fatalf("the server sent %d pings during 100 produce calls, want none", received)
	}
}
