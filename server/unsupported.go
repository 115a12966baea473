package server

import (
	"context"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"google.golang.org/grpc"
)

// groupService answers UNIMPLEMENTED with reason UNSUPPORTED until the
// group coordinator exists.
type groupService struct {
	sluicev1.UnimplementedGroupServiceServer
}

func (groupService) Membership(grpc.BidiStreamingServer[sluicev1.MembershipRequest, sluicev1.MembershipResponse]) error {
	return unsupported("consumer groups")
}

func (groupService) CommitOffsets(context.Context, *sluicev1.CommitOffsetsRequest) (*sluicev1.CommitOffsetsResponse, error) {
	return nil, unsupported("consumer groups")
}

func (groupService) FetchOffsets(context.Context, *sluicev1.FetchOffsetsRequest) (*sluicev1.FetchOffsetsResponse, error) {
	return nil, unsupported("consumer groups")
}

func (groupService) ListGroups(context.Context, *sluicev1.ListGroupsRequest) (*sluicev1.ListGroupsResponse, error) {
	return nil, unsupported("consumer groups")
}

func (groupService) DescribeGroup(context.Context, *sluicev1.DescribeGroupRequest) (*sluicev1.DescribeGroupResponse, error) {
	return nil, unsupported("consumer groups")
}

func (groupService) ResetOffsets(context.Context, *sluicev1.ResetOffsetsRequest) (*sluicev1.ResetOffsetsResponse, error) {
	return nil, unsupported("consumer groups")
}

func (groupService) DeleteGroup(context.Context, *sluicev1.DeleteGroupRequest) (*sluicev1.DeleteGroupResponse, error) {
	return nil, unsupported("consumer groups")
}

// transactionService answers UNIMPLEMENTED with reason UNSUPPORTED until
// the transaction coordinator exists.
type transactionService struct {
	sluicev1.UnimplementedTransactionServiceServer
}

func (transactionService) AddPartitionsToTransaction(context.Context, *sluicev1.AddPartitionsToTransactionRequest) (*sluicev1.AddPartitionsToTransactionResponse, error) {
	return nil, unsupported("transactions")
}

func (transactionService) CommitTransactionalOffsets(context.Context, *sluicev1.CommitTransactionalOffsetsRequest) (*sluicev1.CommitTransactionalOffsetsResponse, error) {
	return nil, unsupported("transactions")
}

func (transactionService) EndTransaction(context.Context, *sluicev1.EndTransactionRequest) (*sluicev1.EndTransactionResponse, error) {
	return nil, unsupported("transactions")
}

func (transactionService) ListTransactions(context.Context, *sluicev1.ListTransactionsRequest) (*sluicev1.ListTransactionsResponse, error) {
	return nil, unsupported("transactions")
}
