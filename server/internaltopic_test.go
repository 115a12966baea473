package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func TestInternalTopicsAreNotWritable(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	// Using groups creates __consumer_offsets.
	if _, err := n.Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: "g"}); err != nil {
		t.Logf("fetch offsets: %v", err)
	}
	lt, err := n.Admin.ListTopics(ctx, &sluicev1.ListTopicsRequest{IncludeInternal: true})
	if err != nil {
		t.Fatal(err)
	}
	var internal string
	for _, tp := range lt.GetTopics() {
		if tp.GetInternal() {
			internal = tp.GetName()
		}
	}
	if internal == "" {
		t.Skip("no internal topic to write to")
	}
	_, err = n.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: internal, Partition: proto.Int32(0),
		Batch: &sluicev1.RecordBatch{Records: records(1, "evil")}})
	wantError(t, err, codes.PermissionDenied, "NOT_AUTHORIZED")
	_, err = n.Admin.DeleteRecords(ctx, &sluicev1.DeleteRecordsRequest{Topic: internal, BeforeOffsets: map[int32]int64{0: -1}})
	wantError(t, err, codes.PermissionDenied, "NOT_AUTHORIZED")
	if lt, err := n.Admin.ListTopics(ctx, &sluicev1.ListTopicsRequest{}); err != nil || len(lt.GetTopics()) != 0 {
		t.Fatalf("internal topics listed without include_internal: %v %v", lt, err)
	}
}
