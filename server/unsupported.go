package server

import (
	"context"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

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
