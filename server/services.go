package server

import (
	"strconv"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// registerServices registers every API service on the gRPC server.
func (s *Server) registerServices() {
	sluicev1.RegisterProducerServiceServer(s.grpc, &producerService{s: s})
	sluicev1.RegisterConsumerServiceServer(s.grpc, &consumerService{s: s})
	sluicev1.RegisterAdminServiceServer(s.grpc, &adminService{s: s})
	sluicev1.RegisterClusterServiceServer(s.grpc, &clusterService{s: s})
	sluicev1.RegisterGroupServiceServer(s.grpc, &groupService{s: s})
	sluicev1.RegisterTransactionServiceServer(s.grpc, &transactionService{})
}

func itoa[T ~int32 | ~int64 | ~uint64 | ~int](v T) string {
	return strconv.FormatInt(int64(v), 10)
}
