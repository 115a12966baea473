package server

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Forwarding: any node answers any request. A call that must run on
// another node (a produce on the partition leader, a topic change on the
// controller) is sent there over its client API, carrying the ids of the
// nodes that forwarded it. A call is forwarded at most maxForwardHops
// times (a node without a replica forwards to the preferred leader, which
// may forward to the actual one); beyond that it is answered NOT_LEADER
// with the hint, so nodes with different views cannot bounce it.
const maxForwardHops = 2

// forwardedBy lists the nodes that forwarded the incoming call.
func forwardedBy(ctx context.Context) []string {
	md, _ := metadata.FromIncomingContext(ctx)
	return md.Get(forwardedKey)
}

// forwardTo calls method on node with req, filling resp. It reports false
// when the call cannot be forwarded (this node is the target, the target's
// address is unknown, or the call was forwarded too often).
func (s *Server) forwardTo(ctx context.Context, node uint64, method string, req, resp proto.Message) (bool, error) {
	hops := forwardedBy(ctx)
	if node == 0 || node == s.cfg.NodeID || len(hops) >= maxForwardHops {
		return false, nil
	}
	addr := s.nodeAddr(node)
	if addr == "" {
		return false, nil
	}
	conn, err := s.peers.conn(addr)
	if err != nil {
		return false, nil
	}
	kv := make([]string, 0, 2*len(hops)+2)
	for _, h := range append(hops, itoa(s.cfg.NodeID)) {
		kv = append(kv, forwardedKey, h)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	if err := conn.Invoke(ctx, method, req, resp); err != nil {
		return true, &remoteError{st: status.Convert(err)}
	}
	return true, nil
}

// toController forwards a topic change that failed here because this node
// is not the controller.
func (s *Server) toController(ctx context.Context, cause error, method string, req, resp proto.Message) (bool, error) {
	var nc *cluster.NotControllerError
	if !errors.As(cause, &nc) {
		return false, nil
	}
	return s.forwardTo(ctx, nc.Leader, method, req, resp)
}

// forwardProduce sends a produce for partition idx to its leader (when
// leader is 0, this node holds no replica: to the preferred leader, which
// knows the current one). It returns cause when it cannot forward.
func (s *Server) forwardProduce(ctx context.Context, req *sluicev1.ProduceRequest, idx int32, leader uint64, cause error) (*sluicev1.ProduceResponse, error) {
	var nr *cluster.NotReplicaError
	if leader == 0 && errors.As(cause, &nr) && len(nr.Replicas) > 0 {
		leader = nr.Replicas[0]
	}
	fr := &sluicev1.ProduceRequest{Topic: req.GetTopic(), Partition: &idx, Acks: req.GetAcks(), Batch: req.GetBatch(),
		TransactionalId: req.GetTransactionalId(), TimeoutMs: req.GetTimeoutMs()}
	resp := new(sluicev1.ProduceResponse)
	ok, err := s.forwardTo(ctx, leader, sluicev1.ProducerService_Produce_FullMethodName, fr, resp)
	if !ok {
		return nil, cause
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// unreachable reports whether a forwarded call failed to reach its node
// (as opposed to the node answering with an error).
func unreachable(err error) bool {
	var re *remoteError
	if !errors.As(err, &re) || re.st.Code() != codes.Unavailable {
		return false
	}
	for _, d := range re.st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return false
		}
	}
	return true
}
