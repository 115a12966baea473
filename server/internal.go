package server

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication/grpctransport"
)

// The node-to-node service on the internal listener. Until the internal
// API has its own protos it is declared by hand with well-known wrapper
// messages: ForwardMetadata takes an encoded metadata command
// (BytesValue) from a node that is not the controller and answers the
// metadata log offset after it (UInt64Value), once the controller applied
// it.
const (
	internalServiceName   = "sluice.internal.v1.Controller"
	forwardMetadataMethod = "/" + internalServiceName + "/ForwardMetadata"
	heartbeatMethod       = "/" + internalServiceName + "/Heartbeat"
	heartbeatEvery        = time.Second
)

type internalServer interface{}

var internalServiceDesc = grpc.ServiceDesc{
	ServiceName: internalServiceName,
	HandlerType: (*internalServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "ForwardMetadata",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			s := srv.(*Server)
			c := s.opened.Load()
			if c == nil {
				return nil, newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, nil, "the node is starting")
			}
			applied, err := c.md.HandleForwarded(ctx, in.GetValue())
			if err != nil {
				return nil, s.toAPIError(ctx, err)
			}
			return wrapperspb.UInt64(applied), nil
		},
	}, {
		// Join admits a node outside the controller quorum (join.go).
		MethodName: "Join",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(*Server).handleJoin(ctx, in)
		},
	}, {
		// LedPartitions answers the partitions this node leads (leaders.go).
		MethodName: "LedPartitions",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(*Server).handleLedPartitions(ctx, in)
		},
	}, {
		// Heartbeat tells the controller a node (UInt64Value: its id) is up.
		MethodName: "Heartbeat",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.UInt64Value)
			if err := dec(in); err != nil {
				return nil, err
			}
			if c := srv.(*Server).opened.Load(); c != nil {
				c.md.Heard(in.GetValue())
			}
			return &emptypb.Empty{}, nil
		},
	}},
	Metadata: "sluice/internal/v1/controller (hand-written)",
}

// forwardMetadata is this node's cluster.Forwarder: it calls the
// controller's internal listener.
func (s *Server) forwardMetadata(ctx context.Context, ctl cluster.NodeInfo, cmd []byte) (uint64, error) {
	conn, err := s.peers.conn(ctl.InternalAddr)
	if err != nil {
		return 0, err
	}
	out := new(wrapperspb.UInt64Value)
	if err := conn.Invoke(ctx, forwardMetadataMethod, wrapperspb.Bytes(cmd), out); err != nil {
		return 0, domainError(err)
	}
	return out.GetValue(), nil
}

// heartbeatLoop tells the controller, every heartbeatEvery, that this
// node is up. It runs until Shutdown.
func (s *Server) heartbeatLoop(c *core) {
	defer s.wg.Done()
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.stop:
			return
		}
		if c.md.IsController() {
			continue
		}
		ctl, ok := c.md.State().Nodes[c.md.ControllerID()]
		if !ok {
			continue
		}
		conn, err := s.peers.conn(ctl.InternalAddr)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), heartbeatEvery)
		if err := conn.Invoke(ctx, heartbeatMethod, wrapperspb.UInt64(s.cfg.NodeID), &emptypb.Empty{}); err != nil {
			s.logger.Debug("heartbeat to the controller failed", "controller", ctl.ID, "err", err)
		}
		cancel()
	}
}

// domainError turns a peer's NOT_LEADER answer back into the error the
// cluster package retries on; other failures keep their status.
func domainError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if st.Code() == codes.Unavailable {
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == reasonName(sluicev1.ErrorReason_ERROR_REASON_NOT_LEADER) {
				leader, _ := strconv.ParseUint(ei.GetMetadata()["leader"], 10, 64)
				return &cluster.NotControllerError{Leader: leader}
			}
		}
		// The controller is unreachable or restarting: try again later.
		return &cluster.NotControllerError{}
	}
	return &remoteError{st: st}
}

// remoteError is a failure reported by another node, passed on to the
// client as it is.
type remoteError struct{ st *status.Status }

func (e *remoteError) Error() string              { return e.st.Message() }
func (e *remoteError) GRPCStatus() *status.Status { return e.st }

// apiErrorOf rebuilds the API error a status carries.
func apiErrorOf(st *status.Status) *apiError {
	ae := &apiError{code: st.Code(), msg: st.Message()}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == errorDomain {
			ae.reason = sluicev1.ErrorReason(sluicev1.ErrorReason_value["ERROR_REASON_"+ei.GetReason()])
			ae.md = ei.GetMetadata()
		}
	}
	return ae
}

// forwardedKey carries the ids of the nodes that forwarded a call (see
// forward.go); forwarded reports whether any did.
const forwardedKey = "sluice-forwarded-by"

func forwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// peers holds client connections to other nodes, by address.
type peers struct {
	self string
	mu   struct {
		sync.Mutex
		conns  map[string]*grpc.ClientConn
		closed bool
	}
}

func (p *peers) conn(addr string) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, &cluster.NotControllerError{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, errPeersClosed
	}
	if c, ok := p.mu.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStaticStreamWindowSize(grpctransport.StreamWindow), grpc.WithStaticConnWindowSize(grpctransport.ConnWindow))
	if err != nil {
		return nil, err
	}
	if p.mu.conns == nil {
		p.mu.conns = map[string]*grpc.ClientConn{}
	}
	p.mu.conns[addr] = c
	return c, nil
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.closed = true
	for _, c := range p.mu.conns {
		_ = c.Close()
	}
	p.mu.conns = nil
}

var errPeersClosed = errors.New("server: shutting down")
