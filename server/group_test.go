package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// recvAssignment reads the next assignment of a Membership stream.
func recvAssignment(t *testing.T, st sluicev1.GroupService_MembershipClient) *sluicev1.MemberAssignment {
	t.Helper()
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError() != nil {
		t.Fatalf("membership error: %v", resp.GetError())
	}
	return resp.GetAssignment()
}

func countParts(tps []*sluicev1.TopicPartitions) int {
	n := 0
	for _, tp := range tps {
		n += len(tp.GetPartitions())
	}
	return n
}

func TestGroupServiceMembershipAndOffsets(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	createTopic(t, n, "orders", 4, nil)
	produce(t, n, "orders", 0, records(5, "r"))

	a, err := n.Group.Membership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	join := &sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Join{Join: &sluicev1.JoinGroup{
		GroupId: "g", Topics: []string{"orders"}, ClientId: "test-a", SessionTimeoutMs: 30000}}}
	if err := a.Send(join); err != nil {
		t.Fatal(err)
	}
	aAsg := recvAssignment(t, a)
	if countParts(aAsg.GetAssigned()) != 4 || aAsg.GetHeartbeatIntervalMs() == 0 {
		t.Fatalf("first member: %v", aAsg)
	}
	b, err := n.Group.Membership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Send(join); err != nil {
		t.Fatal(err)
	}
	if bAsg := recvAssignment(t, b); countParts(bAsg.GetAssigned()) != 0 {
		t.Fatalf("b before a confirmed: %v", bAsg)
	}
	aAsg = recvAssignment(t, a)
	if countParts(aAsg.GetRevoking()) != 2 {
		t.Fatalf("a revoking: %v", aAsg)
	}
	rev := aAsg.GetRevoking()[0]
	if _, err := n.Group.CommitOffsets(ctx, &sluicev1.CommitOffsetsRequest{GroupId: "g", MemberId: aAsg.GetMemberId(),
		MemberEpoch: aAsg.GetMemberEpoch(), Offsets: []*sluicev1.OffsetCommit{{Topic: rev.GetTopic(), Partition: rev.GetPartitions()[0], Offset: 3, Metadata: "x"}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(&sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Confirm{Confirm: &sluicev1.ConfirmRevocation{MemberEpoch: aAsg.GetMemberEpoch()}}}); err != nil {
		t.Fatal(err)
	}
	if bAsg := recvAssignment(t, b); countParts(bAsg.GetAssigned()) != 2 {
		t.Fatalf("b after a confirmed: %v", bAsg)
	}
	// a's old epoch is fenced for the partition it gave up.
	_, err = n.Group.CommitOffsets(ctx, &sluicev1.CommitOffsetsRequest{GroupId: "g", MemberId: aAsg.GetMemberId(),
		MemberEpoch: aAsg.GetMemberEpoch(), Offsets: []*sluicev1.OffsetCommit{{Topic: rev.GetTopic(), Partition: rev.GetPartitions()[0], Offset: 4}}})
	wantError(t, err, codes.FailedPrecondition, "STALE_MEMBER_EPOCH")

	fo, err := n.Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: "g"})
	if err != nil || len(fo.GetOffsets()) != 1 || fo.GetOffsets()[0].GetOffset() != 3 || fo.GetOffsets()[0].GetMetadata() != "x" {
		t.Fatalf("fetch offsets: %v %v", fo, err)
	}
	lg, err := n.Group.ListGroups(ctx, &sluicev1.ListGroupsRequest{})
	if err != nil || len(lg.GetGroups()) != 1 || lg.GetGroups()[0].GetMembers() != 2 {
		t.Fatalf("list: %v %v", lg, err)
	}
	d, err := n.Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: "g"})
	if err != nil || d.GetState() != sluicev1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != 2 || len(d.GetOffsets()) != 4 {
		t.Fatalf("describe: %v %v", d, err)
	}
	for _, pl := range d.GetOffsets() {
		if pl.GetPartition() == 0 && pl.GetTopic() == "orders" && pl.GetHighWatermark() != 5 {
			t.Fatalf("lag of orders/0: %v", pl)
		}
	}
	// Reset needs an empty group.
	reset := &sluicev1.ResetOffsetsRequest{GroupId: "g", Partitions: []*sluicev1.TopicPartitions{{Topic: "orders"}},
		Target: &sluicev1.ResetTarget{Target: &sluicev1.ResetTarget_Latest{Latest: true}}}
	_, err = n.Group.ResetOffsets(ctx, reset)
	wantError(t, err, codes.FailedPrecondition, "GROUP_NOT_EMPTY")
	_, err = n.Group.DeleteGroup(ctx, &sluicev1.DeleteGroupRequest{GroupId: "g"})
	wantError(t, err, codes.FailedPrecondition, "GROUP_NOT_EMPTY")

	// Both leave by closing their streams.
	for _, st := range []sluicev1.GroupService_MembershipClient{a, b} {
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := st.Recv(); err != nil {
				break
			}
		}
	}
	reset.DryRun = true
	rr, err := n.Group.ResetOffsets(ctx, reset)
	if err != nil || len(rr.GetOffsets()) != 4 || rr.GetOffsets()[0].GetOffset() != 5 {
		t.Fatalf("dry run: %v %v", rr, err)
	}
	if fo, _ := n.Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: "g"}); len(fo.GetOffsets()) != 1 {
		t.Fatalf("dry run changed offsets: %v", fo)
	}
	reset.DryRun = false
	if _, err := n.Group.ResetOffsets(ctx, reset); err != nil {
		t.Fatal(err)
	}
	if fo, _ := n.Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: "g"}); len(fo.GetOffsets()) != 4 {
		t.Fatalf("after reset: %v", fo)
	}
	if _, err := n.Group.DeleteGroup(ctx, &sluicev1.DeleteGroupRequest{GroupId: "g"}); err != nil {
		t.Fatal(err)
	}
	_, err = n.Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: "g"})
	wantError(t, err, codes.NotFound, "UNKNOWN_GROUP")
}
