package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Joining: a node outside the controller quorum starts with Config.Join,
// the internal addresses of some existing nodes. Before it opens its data
// it calls Join (internal API) on one of them with its id and addresses;
// a node that is not the controller passes the call on to the controller,
// which registers the node and adds it to the metadata group as a learner
// (cluster.Metadata.AddNode) and answers the metadata voters and the known
// nodes. The joining node then opens its metadata replica as a new member
// of the group, receives the log, registers itself as any node does, and
// is placed replicas like the others. A restart joins again (idempotent)
// to learn the current addresses.

const joinMethod = "/" + internalServiceName + "/Join"

// joinRequest and the cluster.JoinInfo answer travel as JSON in
// BytesValue, like the other hand-declared internal calls.
type joinRequest struct {
	Node cluster.NodeInfo
}

// joinedPeers holds the internal addresses a Join answer named, for the
// Raft transport until the metadata log is applied here.
type joinedPeers struct {
	mu struct {
		sync.Mutex
		addrs map[uint64]string
	}
}

func (j *joinedPeers) set(nodes []cluster.NodeInfo) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.mu.addrs == nil {
		j.mu.addrs = map[uint64]string{}
	}
	for _, n := range nodes {
		if n.InternalAddr != "" {
			j.mu.addrs[n.ID] = n.InternalAddr
		}
	}
}

func (j *joinedPeers) get(id uint64) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	a, ok := j.mu.addrs[id]
	return a, ok
}

// handleJoin serves the internal Join call.
func (s *Server) handleJoin(ctx context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	var req joinRequest
	if err := json.Unmarshal(in.GetValue(), &req); err != nil {
		return nil, newAPIError(codes.InvalidArgument, sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST, nil, "undecodable join request")
	}
	c := s.opened.Load()
	if c == nil {
		return nil, newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, nil, "the node is starting")
	}
	if !c.md.IsController() {
		ctl, ok := c.md.State().Nodes[c.md.ControllerID()]
		if !ok || forwarded(ctx) {
			return nil, s.toAPIError(ctx, &cluster.NotControllerError{Leader: c.md.ControllerID()})
		}
		conn, err := s.peers.conn(ctl.InternalAddr)
		if err != nil {
			return nil, s.toAPIError(ctx, err)
		}
		out := new(wrapperspb.BytesValue)
		if err := conn.Invoke(metadata.AppendToOutgoingContext(ctx, forwardedKey, itoa(s.cfg.NodeID)), joinMethod, in, out); err != nil {
			return nil, err
		}
		return out, nil
	}
	ji, err := c.md.AddNode(ctx, req.Node)
	if err != nil {
		return nil, s.toAPIError(ctx, err)
	}
	data, err := json.Marshal(ji)
	if err != nil {
		return nil, err
	}
	return wrapperspb.Bytes(data), nil
}

// join asks the nodes of Config.Join, in turn and until ctx ends, to admit
// this node, and returns the controller's answer.
func (s *Server) join(ctx context.Context, self cluster.NodeInfo) (cluster.JoinInfo, error) {
	data, err := json.Marshal(joinRequest{Node: self})
	if err != nil {
		return cluster.JoinInfo{}, err
	}
	backoff := 50 * time.Millisecond
	var errs []string
	for attempt := 0; ; attempt++ {
		for _, addr := range s.cfg.Join {
			conn, err := s.peers.conn(strings.TrimSpace(addr))
			if err != nil {
				return cluster.JoinInfo{}, err
			}
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			out := new(wrapperspb.BytesValue)
			err = conn.Invoke(cctx, joinMethod, wrapperspb.Bytes(data), out)
			cancel()
			if err == nil {
				var ji cluster.JoinInfo
				if err := json.Unmarshal(out.GetValue(), &ji); err != nil {
					return cluster.JoinInfo{}, fmt.Errorf("server: join through %s: %w", addr, err)
				}
				return ji, nil
			}
			if attempt == 0 {
				errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
			}
			s.logger.Info("joining the cluster: node did not admit us yet", "through", addr, "err", err)
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 2*time.Second)
		case <-ctx.Done():
			return cluster.JoinInfo{}, fmt.Errorf("server: join %v: %w (first errors: %s)", s.cfg.Join, ctx.Err(), strings.Join(errs, "; "))
		case <-s.stop:
			return cluster.JoinInfo{}, errors.New("server: shut down while joining")
		}
	}
}
