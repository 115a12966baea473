package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/coordinator"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// groupMember is a Consume stream's group membership: a session on this
// node's coordinator, or a Membership stream to the node coordinating the
// group (so a thin client can consume a group through any node).
type groupMember interface {
	MemberID() string
	Notify() <-chan struct{}
	Done() <-chan struct{}
	Err() error
	Next() (coordinator.Assignment, bool)
	Heartbeat(ctx context.Context, epoch int32) error
	Confirm(ctx context.Context, epoch int32) error
	Fetch(ctx context.Context, epoch int32, tps []coordinator.TP) (map[coordinator.TP]coordinator.Committed, error)
	Commit(ctx context.Context, epoch int32, offsets []coordinator.OffsetCommit) error
	Close(ctx context.Context) error
}

// localMember is a membership on this node's coordinator.
type localMember struct {
	*coordinator.Session
	c     *coordinator.Coordinator
	group string
}

func (m localMember) Fetch(ctx context.Context, epoch int32, tps []coordinator.TP) (map[coordinator.TP]coordinator.Committed, error) {
	return m.c.Fetch(ctx, m.group, m.MemberID(), epoch, tps)
}

func (m localMember) Commit(ctx context.Context, epoch int32, offsets []coordinator.OffsetCommit) error {
	return m.c.Commit(ctx, m.group, m.MemberID(), epoch, offsets)
}

// remoteMember is a membership held through a Membership stream to the
// group's coordinator on another node. Its reader goroutine ends with the
// stream; Close ends the stream and waits for it.
type remoteMember struct {
	group    string
	memberID string
	conn     *grpc.ClientConn
	fwd      context.Context // carries the forwarding marks for unary calls
	stream   grpc.BidiStreamingClient[sluicev1.MembershipRequest, sluicev1.MembershipResponse]
	cancel   context.CancelFunc

	mu struct {
		sync.Mutex
		pending *coordinator.Assignment
		err     error
	}
	notify chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
}

// joinRemote joins group on node's coordinator for a Consume stream.
func (s *Server) joinRemote(ctx context.Context, node uint64, join *sluicev1.JoinGroup) (groupMember, error) {
	addr := s.nodeAddr(node)
	if addr == "" {
		return nil, &coordinator.NotCoordinatorError{Group: join.GetGroupId(), Leader: node}
	}
	conn, err := s.peers.conn(addr)
	if err != nil {
		return nil, err
	}
	kv := []string{}
	for _, h := range append(forwardedBy(ctx), itoa(s.cfg.NodeID)) {
		kv = append(kv, forwardedKey, h)
	}
	// The stream lives as long as the Consume stream, not the joining call.
	sctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.WithoutCancel(ctx), kv...))
	stream, err := sluicev1.NewGroupServiceClient(conn).Membership(sctx)
	if err != nil {
		cancel()
		return nil, &remoteError{st: status.Convert(err)}
	}
	if err := stream.Send(&sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Join{Join: join}}); err != nil {
		cancel()
		return nil, &remoteError{st: status.Convert(err)}
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, &remoteError{st: status.Convert(err)}
	}
	if e := first.GetError(); e != nil {
		cancel()
		return nil, remoteProtoError(e)
	}
	a := first.GetAssignment()
	m := &remoteMember{group: join.GetGroupId(), memberID: a.GetMemberId(), conn: conn, fwd: sctx, stream: stream,
		cancel: cancel, notify: make(chan struct{}, 1), done: make(chan struct{})}
	m.publish(a)
	m.wg.Add(1)
	go m.read()
	return m, nil
}

func remoteProtoError(e *sluicev1.Error) error {
	return &apiError{code: codes.Code(e.GetCode()), reason: e.GetReason(), msg: e.GetMessage(), md: e.GetMetadata()}
}

func (m *remoteMember) read() {
	defer m.wg.Done()
	for {
		resp, err := m.stream.Recv()
		if err != nil {
			m.end(&remoteError{st: status.Convert(err)})
			return
		}
		if e := resp.GetError(); e != nil {
			m.end(remoteProtoError(e))
			return
		}
		if a := resp.GetAssignment(); a != nil {
			m.publish(a)
		}
	}
}

func (m *remoteMember) publish(a *sluicev1.MemberAssignment) {
	ca := coordinator.Assignment{MemberID: a.GetMemberId(), Epoch: a.GetMemberEpoch(),
		Assigned: tpsOf(a.GetAssigned()), Revoking: tpsOf(a.GetRevoking()),
		HeartbeatInterval: time.Duration(a.GetHeartbeatIntervalMs()) * time.Millisecond}
	m.mu.Lock()
	m.mu.pending = &ca
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *remoteMember) end(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.err == nil {
		m.mu.err = err
		close(m.done)
	}
}

func (m *remoteMember) MemberID() string        { return m.memberID }
func (m *remoteMember) Notify() <-chan struct{} { return m.notify }
func (m *remoteMember) Done() <-chan struct{}   { return m.done }

func (m *remoteMember) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.err
}

func (m *remoteMember) Next() (coordinator.Assignment, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.pending == nil {
		return coordinator.Assignment{}, false
	}
	a := *m.mu.pending
	m.mu.pending = nil
	return a, true
}

func (m *remoteMember) send(req *sluicev1.MembershipRequest) error {
	if err := m.stream.Send(req); err != nil {
		return &remoteError{st: status.Convert(err)}
	}
	return nil
}

func (m *remoteMember) Heartbeat(_ context.Context, epoch int32) error {
	return m.send(&sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Heartbeat{Heartbeat: &sluicev1.MemberHeartbeat{MemberEpoch: epoch}}})
}

func (m *remoteMember) Confirm(_ context.Context, epoch int32) error {
	return m.send(&sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Confirm{Confirm: &sluicev1.ConfirmRevocation{MemberEpoch: epoch}}})
}

// call runs a unary group call on the coordinator with the forwarding marks.
func (m *remoteMember) call(ctx context.Context, method string, req, resp any) error {
	if md, ok := metadata.FromOutgoingContext(m.fwd); ok {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	if err := m.conn.Invoke(ctx, method, req, resp); err != nil {
		return &remoteError{st: status.Convert(err)}
	}
	return nil
}

func (m *remoteMember) Fetch(ctx context.Context, epoch int32, tps []coordinator.TP) (map[coordinator.TP]coordinator.Committed, error) {
	sortTPs(tps)
	req := &sluicev1.FetchOffsetsRequest{GroupId: m.group, MemberId: m.memberID, MemberEpoch: epoch, Partitions: topicPartitions(tps)}
	resp := new(sluicev1.FetchOffsetsResponse)
	if err := m.call(ctx, sluicev1.GroupService_FetchOffsets_FullMethodName, req, resp); err != nil {
		return nil, err
	}
	out := map[coordinator.TP]coordinator.Committed{}
	for _, co := range resp.GetOffsets() {
		out[coordinator.TP{Topic: co.GetTopic(), Partition: co.GetPartition()}] = coordinator.Committed{
			Offset: co.GetOffset(), Metadata: co.GetMetadata(), CommitTime: co.GetCommitTimeMs()}
	}
	return out, nil
}

func (m *remoteMember) Commit(ctx context.Context, epoch int32, offsets []coordinator.OffsetCommit) error {
	req := &sluicev1.CommitOffsetsRequest{GroupId: m.group, MemberId: m.memberID, MemberEpoch: epoch}
	for _, o := range offsets {
		req.Offsets = append(req.Offsets, &sluicev1.OffsetCommit{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata})
	}
	return m.call(ctx, sluicev1.GroupService_CommitOffsets_FullMethodName, req, new(sluicev1.CommitOffsetsResponse))
}

// Close leaves: it closes the stream and waits for the coordinator to end
// it (or ctx).
func (m *remoteMember) Close(ctx context.Context) error {
	err := m.stream.CloseSend()
	go func() { // bound the wait by ctx
		select {
		case <-ctx.Done():
			m.cancel()
		case <-m.done:
		}
	}()
	m.wg.Wait()
	m.cancel()
	return err
}

// staleReason reports whether err (local or from a remote coordinator) is a
// stale member epoch.
func staleReason(err error) bool {
	var se *coordinator.StaleEpochError
	if errors.As(err, &se) {
		return true
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.reason == sluicev1.ErrorReason_ERROR_REASON_STALE_MEMBER_EPOCH
	}
	var re *remoteError
	if errors.As(err, &re) {
		return apiErrorOf(re.st).reason == sluicev1.ErrorReason_ERROR_REASON_STALE_MEMBER_EPOCH
	}
	return false
}
