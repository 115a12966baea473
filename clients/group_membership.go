package clients

import (
	"context"
	"errors"
	"io"
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// errLeft ends the membership loop after a graceful leave.
var errLeft = errors.New("sluice: left the group")

// run owns the membership stream: it joins, follows the coordinator, and rejoins with
// the member's id and epoch when the stream breaks, until Close.
func (g *GroupConsumer) run() {
	defer close(g.done)
	for attempt := 0; ; attempt++ {
		err := g.session()
		if errors.Is(err, errLeft) {
			return
		}
		switch ReasonOf(err) {
		case sluicev1.ErrorReason_ERROR_REASON_NOT_COORDINATOR:
			g.followCoordinator(err, attempt)
		case sluicev1.ErrorReason_ERROR_REASON_STALE_MEMBER_EPOCH:
			if e, _ := AsError(err); g.gc.InstanceID != "" && e.Metadata["replaced"] == "true" {
				// Another process joined with this instance id: it is the member now.
				// Rejoining would fence it in turn.
				g.logger.Error("another consumer joined with this instance id; stopping", "instance", g.gc.InstanceID)
				g.loseAll()
				g.mu.Lock()
				g.mu.fatal = err
				g.mu.Unlock()
				return
			}
			g.logger.Warn("group membership lost; rejoining", "err", err)
			g.loseAll()
		case sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_MEMBER:
			// Expelled or replaced: everything this member had is gone; join anew.
			g.logger.Warn("group membership lost; rejoining", "err", err)
			g.loseAll()
		case sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST:
			g.logger.Error("group join refused", "err", err)
		default:
			g.logger.Info("group membership stream ended; reconnecting", "err", err)
			g.followCoordinator(nil, attempt)
		}
		select {
		case <-g.leave:
			return
		case <-time.After(g.cons.cfg.backoff(min(attempt, 6))):
		}
	}
}

// session runs one Membership stream.
func (g *GroupConsumer) session() error {
	g.mu.Lock()
	addr, memberID, epoch := g.mu.coordAddr, g.mu.memberID, g.mu.epoch
	g.mu.Unlock()
	conn, err := g.cons.cl.conn(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := sluicev1.NewGroupServiceClient(conn).Membership(ctx)
	if err != nil {
		return fromStatus(err)
	}
	join := &sluicev1.JoinGroup{GroupId: g.group, Topics: g.gc.Topics, TopicPattern: g.gc.TopicPattern,
		InstanceId: g.gc.InstanceID, Assignor: g.gc.Assignor, SessionTimeoutMs: int32(g.gc.SessionTimeout.Milliseconds()),
		ClientId: g.gc.ClientID, MemberId: memberID, MemberEpoch: epoch}
	if err := stream.Send(&sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Join{Join: join}}); err != nil {
		return fromStatus(err)
	}
	msgs := make(chan *sluicev1.MembershipResponse)
	recvErr := make(chan error, 1)
	go func() { // ends with the stream (ctx is canceled when session returns)
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	hb := time.NewTicker(3 * time.Second)
	defer hb.Stop()
	var ac <-chan time.Time
	if !g.gc.ManualCommit {
		t := time.NewTicker(g.gc.AutoCommitInterval)
		defer t.Stop()
		ac = t.C
	}
	var hbEvery time.Duration
	for {
		select {
		case m := <-msgs:
			if e := m.GetError(); e != nil {
				return fromProto(e)
			}
			a := m.GetAssignment()
			if a == nil {
				continue
			}
			if d := time.Duration(a.GetHeartbeatIntervalMs()) * time.Millisecond; d > 0 && d != hbEvery {
				hbEvery = d
				hb.Reset(d)
			}
			if err := g.apply(ctx, stream, a); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return &Error{Reason: sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, Message: "membership stream closed"}
			}
			return fromStatus(err)
		case <-hb.C:
			g.mu.Lock()
			e := g.mu.epoch
			g.mu.Unlock()
			if err := stream.Send(&sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Heartbeat{Heartbeat: &sluicev1.MemberHeartbeat{MemberEpoch: e}}}); err != nil {
				return fromStatus(err)
			}
		case <-g.polled:
			if err := g.finishRevocation(ctx, stream, false); err != nil {
				return err
			}
		case <-ac:
			if err := g.commitProcessed(ctx, nil, false); err != nil {
				g.logger.Warn("automatic commit failed", "err", err)
			}
		case <-g.leave:
			cctx, ccancel := context.WithTimeout(context.Background(), g.cons.cfg.requestTimeout)
			if err := g.finishRevocation(cctx, nil, true); err != nil {
				g.logger.Warn("giving up revoked partitions on close failed", "err", err)
			}
			if !g.gc.ManualCommit {
				if err := g.commitProcessed(cctx, nil, false); err != nil {
					g.logger.Warn("commit on close failed", "err", err)
				}
			}
			ccancel()
			// Closing the stream is the leave; wait for the server to end it
			// (assignments still arriving meanwhile are dropped).
			_ = stream.CloseSend()
			deadline := time.After(g.cons.cfg.requestTimeout)
			for {
				select {
				case <-msgs:
					continue
				case <-recvErr:
				case <-deadline:
				}
				return errLeft
			}
		}
	}
}

func tpsFrom(in []*sluicev1.TopicPartitions) map[TopicPartition]bool {
	out := map[TopicPartition]bool{}
	for _, t := range in {
		for _, p := range t.GetPartitions() {
			out[TopicPartition{t.GetTopic(), p}] = true
		}
	}
	return out
}

// apply moves the member to a new assignment: it stops and gives up revoked partitions
// (commit, OnRevoked, then confirm), then starts the new ones from their committed
// offsets (OnAssigned).
func (g *GroupConsumer) apply(ctx context.Context, stream sluicev1.GroupService_MembershipClient, a *sluicev1.MemberAssignment) error {
	assigned := tpsFrom(a.GetAssigned())
	g.mu.Lock()
	g.mu.memberID, g.mu.epoch = a.GetMemberId(), a.GetMemberEpoch()
	var revoked, added []TopicPartition
	for tp := range g.mu.owned {
		if !assigned[tp] {
			revoked = append(revoked, tp)
		}
	}
	for tp := range assigned {
		if !g.mu.owned[tp] && !g.mu.revoking[tp] {
			added = append(added, tp)
		}
	}
	// Revoked partitions stop at once: Poll returns no more of their records.
	for _, tp := range revoked {
		delete(g.mu.owned, tp)
		g.mu.revoking[tp] = true
	}
	g.mu.Unlock()
	sortTPs(added)
	for _, tp := range revoked {
		g.cons.Unassign(tp.Topic, tp.Partition)
	}
	if len(a.GetRevoking()) > 0 {
		g.confirmPending = true
	}
	if err := g.finishRevocation(ctx, stream, false); err != nil {
		return err
	}
	if len(added) == 0 {
		return nil
	}
	req := &sluicev1.FetchOffsetsRequest{GroupId: g.group, MemberId: a.GetMemberId(), MemberEpoch: a.GetMemberEpoch()}
	byTopic := map[string]*sluicev1.TopicPartitions{}
	for _, tp := range added {
		if byTopic[tp.Topic] == nil {
			byTopic[tp.Topic] = &sluicev1.TopicPartitions{Topic: tp.Topic}
			req.Partitions = append(req.Partitions, byTopic[tp.Topic])
		}
		byTopic[tp.Topic].Partitions = append(byTopic[tp.Topic].Partitions, tp.Partition)
	}
	var resp *sluicev1.FetchOffsetsResponse
	err := g.groupCall(ctx, false, func(ctx context.Context, c sluicev1.GroupServiceClient) (err error) {
		resp, err = c.FetchOffsets(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	committed := map[TopicPartition]int64{}
	for _, co := range resp.GetOffsets() {
		committed[TopicPartition{co.GetTopic(), co.GetPartition()}] = co.GetOffset()
	}
	g.mu.Lock()
	for _, tp := range added {
		start := g.gc.ResetTo
		if off, ok := committed[tp]; ok && off >= 0 {
			start = At(off)
			g.mu.committed[tp] = off
		}
		g.mu.owned[tp] = true
		g.cons.Assign(tp.Topic, map[int32]Offset{tp.Partition: start})
	}
	g.mu.Unlock()
	if g.gc.OnAssigned != nil {
		g.gc.OnAssigned(ctx, added)
	}
	return nil
}

// finishRevocation gives up the revoked partitions once the application is done with
// their records (it called Poll since they were handed out, or force at Close):
// their positions are committed (unless ManualCommit), OnRevoked runs, and the
// revocation is confirmed.
func (g *GroupConsumer) finishRevocation(ctx context.Context, stream sluicev1.GroupService_MembershipClient, force bool) error {
	g.mu.Lock()
	var tps []TopicPartition
	for tp := range g.mu.revoking {
		if g.mu.handed[tp] && !force {
			g.mu.Unlock()
			return nil // still being processed: wait for the next Poll
		}
		tps = append(tps, tp)
	}
	g.mu.Unlock()
	sortTPs(tps)
	if len(tps) > 0 {
		if !g.gc.ManualCommit {
			if err := g.commitProcessed(ctx, tps, false); err != nil {
				g.logger.Warn("commit of revoked partitions failed", "err", err)
			}
		}
		if g.gc.OnRevoked != nil {
			g.gc.OnRevoked(ctx, tps)
		}
		g.mu.Lock()
		for _, tp := range tps {
			delete(g.mu.revoking, tp)
			delete(g.mu.returned, tp)
			delete(g.mu.processed, tp)
			delete(g.mu.committed, tp)
		}
		g.mu.Unlock()
	}
	if !g.confirmPending || stream == nil {
		return nil
	}
	g.confirmPending = false
	g.mu.Lock()
	epoch := g.mu.epoch
	g.mu.Unlock()
	if err := stream.Send(&sluicev1.MembershipRequest{Request: &sluicev1.MembershipRequest_Confirm{
		Confirm: &sluicev1.ConfirmRevocation{MemberEpoch: epoch}}}); err != nil {
		return fromStatus(err)
	}
	return nil
}

// loseAll forgets the membership and every partition (without committing: the member
// no longer owns them).
func (g *GroupConsumer) loseAll() {
	g.mu.Lock()
	lost := make([]TopicPartition, 0, len(g.mu.owned))
	for tp := range g.mu.owned {
		lost = append(lost, tp)
		g.cons.Unassign(tp.Topic, tp.Partition)
	}
	for tp := range g.mu.revoking {
		lost = append(lost, tp)
	}
	g.confirmPending = false
	g.mu.memberID, g.mu.epoch = "", 0
	g.mu.owned = map[TopicPartition]bool{}
	g.mu.revoking = map[TopicPartition]bool{}
	g.mu.returned = map[TopicPartition]int64{}
	g.mu.processed = map[TopicPartition]int64{}
	g.mu.committed = map[TopicPartition]int64{}
	g.mu.Unlock()
	if len(lost) > 0 && g.gc.OnRevoked != nil {
		sortTPs(lost)
		g.gc.OnRevoked(context.Background(), lost)
	}
}
