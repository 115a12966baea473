package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/coordinator"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// groupService is the GroupService: membership streams, offsets and group
// administration, served by the node coordinating each group (unary calls
// are forwarded there; a Membership stream on another node is answered
// NOT_COORDINATOR with the coordinator's address).
type groupService struct {
	sluicev1.UnimplementedGroupServiceServer
	s *Server
}

func (g *groupService) coord() (*coordinator.Coordinator, error) {
	c := g.s.opened.Load()
	if c == nil || c.coord == nil {
		return nil, coordinator.ErrClosed
	}
	return c.coord, nil
}

// forward sends a unary group call to the group's coordinator when err
// says it is elsewhere. It reports whether it did.
func (g *groupService) forward(ctx context.Context, err error, method string, req, resp proto.Message) (bool, error) {
	var nc *coordinator.NotCoordinatorError
	if !errors.As(err, &nc) || nc.Leader == 0 {
		return false, nil
	}
	return g.s.forwardTo(ctx, nc.Leader, method, req, resp)
}

func tpsOf(in []*sluicev1.TopicPartitions) []coordinator.TP {
	var out []coordinator.TP
	for _, t := range in {
		for _, p := range t.GetPartitions() {
			out = append(out, coordinator.TP{Topic: t.GetTopic(), Partition: p})
		}
	}
	return out
}

// topicPartitions groups partitions (sorted by topic) per topic.
func topicPartitions(tps []coordinator.TP) []*sluicev1.TopicPartitions {
	var out []*sluicev1.TopicPartitions
	for _, tp := range tps {
		if len(out) == 0 || out[len(out)-1].Topic != tp.Topic {
			out = append(out, &sluicev1.TopicPartitions{Topic: tp.Topic})
		}
		last := out[len(out)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	return out
}

func (g *groupService) CommitOffsets(ctx context.Context, req *sluicev1.CommitOffsetsRequest) (*sluicev1.CommitOffsetsResponse, error) {
	if req.GetGroupId() == "" {
		return nil, invalidField("group_id", "required")
	}
	c, err := g.coord()
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	offs := make([]coordinator.OffsetCommit, 0, len(req.GetOffsets()))
	for _, o := range req.GetOffsets() {
		offs = append(offs, coordinator.OffsetCommit{TP: coordinator.TP{Topic: o.GetTopic(), Partition: o.GetPartition()},
			Offset: o.GetOffset(), Metadata: o.GetMetadata()})
	}
	err = c.Commit(ctx, req.GetGroupId(), req.GetMemberId(), req.GetMemberEpoch(), offs)
	resp := new(sluicev1.CommitOffsetsResponse)
	if ok, ferr := g.forward(ctx, err, sluicev1.GroupService_CommitOffsets_FullMethodName, req, resp); ok {
		return resp, ferr
	}
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	return resp, nil
}

func (g *groupService) FetchOffsets(ctx context.Context, req *sluicev1.FetchOffsetsRequest) (*sluicev1.FetchOffsetsResponse, error) {
	if req.GetGroupId() == "" {
		return nil, invalidField("group_id", "required")
	}
	c, err := g.coord()
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	offs, err := c.Fetch(ctx, req.GetGroupId(), req.GetMemberId(), req.GetMemberEpoch(), tpsOf(req.GetPartitions()))
	resp := new(sluicev1.FetchOffsetsResponse)
	if ok, ferr := g.forward(ctx, err, sluicev1.GroupService_FetchOffsets_FullMethodName, req, resp); ok {
		return resp, ferr
	}
	if err != nil {
		return nil, g.s.callError(ctx, g.s.groupError(req.GetGroupId(), err))
	}
	resp.Offsets = committedOffsets(offs)
	return resp, nil
}

func committedOffsets(offs map[coordinator.TP]coordinator.Committed) []*sluicev1.CommittedOffset {
	tps := make([]coordinator.TP, 0, len(offs))
	for tp := range offs {
		tps = append(tps, tp)
	}
	sortTPs(tps)
	out := make([]*sluicev1.CommittedOffset, 0, len(tps))
	for _, tp := range tps {
		co := offs[tp]
		out = append(out, &sluicev1.CommittedOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: co.Offset,
			Metadata: co.Metadata, CommitTimeMs: co.CommitTime})
	}
	return out
}

// Membership is a member's stream: join, then assignments out and
// confirmations, heartbeats and subscription changes in.
func (g *groupService) Membership(stream grpc.BidiStreamingServer[sluicev1.MembershipRequest, sluicev1.MembershipResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return nil
	}
	join := first.GetJoin()
	if join == nil {
		return invalidField("join", "the first message of a Membership stream must be a join")
	}
	if join.GetGroupId() == "" {
		return invalidField("join.group_id", "required")
	}
	c, err := g.coord()
	if err != nil {
		return g.s.callError(ctx, g.s.groupError(join.GetGroupId(), err))
	}
	sess, err := c.Join(ctx, join.GetGroupId(), joinParams(ctx, join))
	if err != nil {
		return g.s.callError(ctx, g.s.groupError(join.GetGroupId(), err))
	}
	return g.s.serveMembership(ctx, join.GetGroupId(), sess, stream)
}

// joinParams converts a JoinGroup.
func joinParams(ctx context.Context, j *sluicev1.JoinGroup) coordinator.JoinParams {
	p := coordinator.JoinParams{MemberID: j.GetMemberId(), MemberEpoch: j.GetMemberEpoch(), InstanceID: j.GetInstanceId(),
		ClientID: j.GetClientId(), Sub: coordinator.Subscription{Topics: j.GetTopics(), Pattern: j.GetTopicPattern()},
		Assignor: coordinator.Assignor(j.GetAssignor()), SessionTimeout: time.Duration(j.GetSessionTimeoutMs()) * time.Millisecond}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p.ClientAddr = pr.Addr.String()
	}
	return p
}

// serveMembership runs a joined member's stream until it closes, the
// member is fenced or expelled, or the node shuts down.
func (s *Server) serveMembership(ctx context.Context, group string, sess *coordinator.Session,
	stream grpc.BidiStreamingServer[sluicev1.MembershipRequest, sluicev1.MembershipResponse]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reqs, recvErr := receive(ctx, stream.Recv)
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = sess.Close(closeCtx)
	}()
	for {
		select {
		case <-sess.Notify():
			if a, ok := sess.Next(); ok {
				if err := stream.Send(&sluicev1.MembershipResponse{Response: &sluicev1.MembershipResponse_Assignment{Assignment: memberAssignment(a)}}); err != nil {
					return nil
				}
			}
		case <-sess.Done():
			return s.endMembership(ctx, group, sess.Err(), stream)
		case req := <-reqs:
			var err error
			switch r := req.GetRequest().(type) {
			case *sluicev1.MembershipRequest_Heartbeat:
				err = sess.Heartbeat(ctx, r.Heartbeat.GetMemberEpoch())
			case *sluicev1.MembershipRequest_Confirm:
				err = sess.Confirm(ctx, r.Confirm.GetMemberEpoch())
			case *sluicev1.MembershipRequest_Update:
				err = sess.UpdateSubscription(ctx, coordinator.Subscription{Topics: r.Update.GetTopics(), Pattern: r.Update.GetTopicPattern()})
			default:
				err = invalidField("request", "a member joins once; send confirm, update or heartbeat")
			}
			if err != nil {
				var se *coordinator.StaleEpochError
				if errors.As(err, &se) {
					// An outdated confirmation or heartbeat: the member
					// has a newer assignment on its way; not fatal.
					continue
				}
				return s.endMembership(ctx, group, err, stream)
			}
		case err := <-recvErr:
			_ = err // EOF or a broken stream: the member leaves (deferred Close)
			return nil
		case <-s.stop:
			return s.endMembership(ctx, group, coordinator.ErrClosed, stream)
		}
	}
}

// endMembership tells the member why its stream ends, then ends it.
func (s *Server) endMembership(ctx context.Context, group string, cause error,
	stream grpc.BidiStreamingServer[sluicev1.MembershipRequest, sluicev1.MembershipResponse]) error {
	ae := s.toAPIError(ctx, s.groupError(group, cause))
	_ = stream.Send(&sluicev1.MembershipResponse{Response: &sluicev1.MembershipResponse_Error{Error: ae.proto()}})
	return nil
}

func memberAssignment(a coordinator.Assignment) *sluicev1.MemberAssignment {
	return &sluicev1.MemberAssignment{MemberId: a.MemberID, MemberEpoch: a.Epoch, Assigned: topicPartitions(a.Assigned),
		Revoking: topicPartitions(a.Revoking), HeartbeatIntervalMs: int32(a.HeartbeatInterval.Milliseconds())}
}
