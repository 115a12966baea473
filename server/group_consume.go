package server

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/coordinator"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// streamGroup is a Consume stream's group membership: the server is the
// member on the client's behalf. It reads the partitions the group
// assigns (from the committed offsets), reports each change with an
// AssignmentChange, heartbeats, commits (automatically at an interval, or
// on StreamCommit), and gives up revoked partitions: it stops reading
// them, commits (in automatic mode), and confirms. In manual mode it
// confirms on the client's next commit, or after revokeGrace.
// Only the stream's handler goroutine touches it.
type streamGroup struct {
	sub   *sluicev1.GroupSubscription
	sess  groupMember
	epoch int32
	owned map[subKey]bool
	// committed is the last offset committed per owned partition.
	committed map[subKey]uint64

	heartbeat                 *time.Ticker // wakes the stream; nextHeartbeat says when one is due
	autoCommit                *time.Ticker // likewise, with nextCommit
	nextHeartbeat, nextCommit time.Time
	// confirmBy is when an unconfirmed revocation (manual mode) is
	// confirmed anyway; zero when none is pending.
	confirmBy    time.Time
	confirmEpoch int32
	interval     time.Duration
}

// revokeGrace is how long, in manual mode, a client may still commit
// partitions taken from it before the revocation is confirmed for it.
const revokeGrace = time.Second

// joinGroup makes the stream a group member.
func (st *consumeStream) joinGroup(ctx context.Context, gs *sluicev1.GroupSubscription) error {
	if st.group != nil || len(st.subs) > 0 {
		return invalidField("group", "a stream joins one group, and only without partition subscriptions")
	}
	if gs.GetGroupId() == "" {
		return invalidField("group.group_id", "required")
	}
	switch gs.GetResetPosition().GetPosition().(type) {
	case nil, *sluicev1.StartPosition_Earliest, *sluicev1.StartPosition_Latest:
	default:
		return invalidField("group.reset_position", "only earliest or latest")
	}
	c := st.s.core.coord
	join := &sluicev1.JoinGroup{GroupId: gs.GetGroupId(), Topics: gs.GetTopics(), TopicPattern: gs.GetTopicPattern(),
		InstanceId: gs.GetInstanceId(), ClientId: "consume-stream"}
	member, err := st.s.joinAnywhere(ctx, c, join)
	if err != nil {
		return st.s.toAPIError(ctx, st.s.groupError(gs.GetGroupId(), err))
	}
	g := &streamGroup{sub: gs, sess: member, owned: map[subKey]bool{}, committed: map[subKey]uint64{},
		interval: time.Second}
	g.heartbeat = time.NewTicker(g.interval)
	g.nextHeartbeat = time.Now().Add(g.interval)
	if ms := gs.GetAutoCommitIntervalMs(); ms > 0 {
		g.autoCommit = time.NewTicker(time.Duration(ms) * time.Millisecond)
		g.nextCommit = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	st.group = g
	return nil
}

// joinAnywhere joins a group on this node's coordinator or, when the group
// lives elsewhere, on its coordinator's node (following its hints while the
// coordinator is being elected or moves).
func (s *Server) joinAnywhere(ctx context.Context, c *coordinator.Coordinator, join *sluicev1.JoinGroup) (groupMember, error) {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, err
			case <-s.stop:
				return nil, coordinator.ErrClosed
			case <-time.After(20 * time.Millisecond):
			}
		}
		var sess *coordinator.Session
		sess, err = c.Join(ctx, join.GetGroupId(), joinParams(ctx, join))
		if err == nil {
			return localMember{Session: sess, c: c, group: join.GetGroupId()}, nil
		}
		var nc *coordinator.NotCoordinatorError
		for errors.As(err, &nc) && len(forwardedBy(ctx)) < maxForwardHops {
			if nc.Leader == 0 || nc.Leader == s.cfg.NodeID {
				break // no coordinator yet: try again shortly
			}
			var m groupMember
			if m, err = s.joinRemote(ctx, nc.Leader, join); err == nil {
				return m, nil
			}
			// A stale hint: the remote names the coordinator it knows.
			nc = nil
			var re *apiError
			if errors.As(err, &re) || asRemote(err, &re) {
				if re.reason == sluicev1.ErrorReason_ERROR_REASON_NOT_COORDINATOR {
					leader, _ := strconv.ParseUint(re.md["coordinator"], 10, 64)
					err = &coordinator.NotCoordinatorError{Group: join.GetGroupId(), Leader: leader}
				}
			}
		}
		if !errors.As(err, &nc) && !errors.Is(err, coordinator.ErrLoading) {
			return nil, err
		}
	}
	return nil, err
}

// asRemote converts a peer's status into the API error it carries.
func asRemote(err error, out **apiError) bool {
	var re *remoteError
	if !errors.As(err, &re) {
		return false
	}
	*out = apiErrorOf(re.st)
	return true
}

// groupChans are the channels a group stream waits on besides its own.
func (st *consumeStream) groupChans() []<-chan struct{} {
	if st.group == nil {
		return nil
	}
	return []<-chan struct{}{st.group.sess.Notify(), st.group.sess.Done()}
}

// groupTimers are the group's timer channels.
func (st *consumeStream) groupTimers() []<-chan time.Time {
	if st.group == nil {
		return nil
	}
	out := []<-chan time.Time{st.group.heartbeat.C}
	if st.group.autoCommit != nil {
		out = append(out, st.group.autoCommit.C)
	}
	return out
}

// groupPoll handles whatever the group has ready (without blocking).
func (st *consumeStream) groupPoll(ctx context.Context) error {
	g := st.group
	if g == nil {
		return nil
	}
	select {
	case <-g.sess.Done():
		return st.s.toAPIError(ctx, st.s.groupError(g.sub.GetGroupId(), g.sess.Err()))
	default:
	}
	if a, ok := g.sess.Next(); ok {
		if err := st.applyAssignment(ctx, a); err != nil {
			return err
		}
	}
	// The tickers only wake the stream's select (which may take their tick):
	// what is due is decided by the clock.
	now := time.Now()
	if !now.Before(g.nextHeartbeat) {
		g.nextHeartbeat = now.Add(g.interval)
		if err := g.sess.Heartbeat(ctx, g.epoch); err != nil && !isStale(err) {
			return st.s.toAPIError(ctx, st.s.groupError(g.sub.GetGroupId(), err))
		}
	}
	if !g.confirmBy.IsZero() && now.After(g.confirmBy) {
		if err := st.confirm(ctx); err != nil {
			return err
		}
	}
	if g.autoCommit != nil && !now.Before(g.nextCommit) {
		g.nextCommit = now.Add(time.Duration(g.sub.GetAutoCommitIntervalMs()) * time.Millisecond)
		if err := st.autoCommitOwned(ctx); err != nil {
			return err
		}
	}
	return nil
}

func isStale(err error) bool { return staleReason(err) }

// applyAssignment stops reading revoked partitions, starts the new ones
// and tells the client.
func (st *consumeStream) applyAssignment(ctx context.Context, a coordinator.Assignment) error {
	g := st.group
	g.epoch = a.Epoch
	if a.HeartbeatInterval > 0 && a.HeartbeatInterval != g.interval {
		g.interval = a.HeartbeatInterval
		g.heartbeat.Reset(g.interval)
		g.nextHeartbeat = time.Now().Add(g.interval)
	}
	keep := map[subKey]bool{}
	for _, tp := range a.Assigned {
		keep[subKey{tp.Topic, tp.Partition}] = true
	}
	var gone []subKey
	for k := range g.owned {
		if !keep[k] {
			gone = append(gone, k)
		}
	}
	if g.autoCommit != nil && len(gone) > 0 {
		if err := st.commitPositions(ctx, gone); err != nil && !isStale(err) {
			return err
		}
	}
	for _, k := range gone {
		delete(g.owned, k)
		delete(g.committed, k)
		st.dropSub(k)
	}
	var added []coordinator.TP
	for _, tp := range a.Assigned {
		if k := (subKey{tp.Topic, tp.Partition}); !g.owned[k] {
			added = append(added, tp)
		}
	}
	if len(added) > 0 {
		offs, err := g.sess.Fetch(ctx, a.Epoch, added)
		if err != nil {
			return st.s.toAPIError(ctx, st.s.groupError(g.sub.GetGroupId(), err))
		}
		for _, tp := range added {
			k := subKey{tp.Topic, tp.Partition}
			g.owned[k] = true
			if err := st.startGroupPartition(ctx, k, offs[tp].Offset); err != nil {
				return err
			}
		}
	}
	change := &sluicev1.AssignmentChange{MemberEpoch: a.Epoch, MemberId: a.MemberID}
	for _, tp := range topicPartitions(a.Assigned) {
		change.Assigned = append(change.Assigned, &sluicev1.AssignedPartitions{Topic: tp.Topic, Partitions: tp.Partitions})
	}
	if err := st.send(&sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_Assignment{Assignment: change}}); err != nil {
		return err
	}
	if len(a.Revoking) > 0 {
		g.confirmEpoch = a.Epoch
		if g.autoCommit != nil {
			return st.confirm(ctx)
		}
		g.confirmBy = time.Now().Add(min(g.interval, revokeGrace))
	}
	return nil
}

// startGroupPartition subscribes the stream to a newly owned partition at
// its committed offset (or the reset position without one, or when the
// committed offset is out of range).
func (st *consumeStream) startGroupPartition(ctx context.Context, k subKey, committed int64) error {
	p, t, err := st.s.core.md.Partition(k.topic, k.part)
	if errors.As(err, new(*cluster.NotReplicaError)) {
		return st.startGroupPartitionRemote(ctx, t, k, committed)
	}
	if err != nil {
		return st.partitionError(k, st.s.toAPIError(ctx, err))
	}
	var off uint64
	start, hw := p.StartOffset(), p.HighWatermark()
	switch {
	case committed >= int64(start) && committed <= int64(hw):
		off = uint64(committed)
	case st.group.sub.GetResetPosition().GetLatest():
		off = hw
	default:
		off = start
	}
	if _, exists := st.subs[k]; !exists {
		st.order = append(st.order, k)
	}
	st.subs[k] = &subscription{key: k, topicID: t.ID, p: p, offset: off, format: st.group.sub.GetRecordFormat()}
	st.group.committed[k] = off
	return nil
}

// startGroupPartitionRemote is startGroupPartition for a partition this
// node holds no replica of: the records come through a feed that fetches
// from a node that has one.
func (st *consumeStream) startGroupPartitionRemote(ctx context.Context, t *cluster.Topic, k subKey, committed int64) error {
	reset := &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Earliest{Earliest: true}}
	if st.group.sub.GetResetPosition().GetLatest() {
		reset = &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Latest{Latest: true}}
	}
	var off uint64
	var err error
	if committed >= 0 {
		off, err = st.resolveRemote(ctx, k.topic, k.part, &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Offset{Offset: committed}})
	}
	if committed < 0 || isOutOfRange(err) {
		off, err = st.resolveRemote(ctx, k.topic, k.part, reset)
	}
	if err != nil {
		return st.partitionError(k, st.s.toAPIError(ctx, err))
	}
	if _, exists := st.subs[k]; !exists {
		st.order = append(st.order, k)
	}
	st.dropSubscription(k)
	format := st.group.sub.GetRecordFormat()
	st.subs[k] = &subscription{key: k, topicID: t.ID, offset: off, format: format,
		feed: st.startFeed(ctx, k.topic, k.part, off, format)}
	st.group.committed[k] = off
	return nil
}

// isOutOfRange reports whether err says an offset is outside the log.
func isOutOfRange(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.reason == sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE
}

// dropSub stops reading a partition (and its feed, if it is read remotely).
func (st *consumeStream) dropSub(k subKey) {
	st.dropSubscription(k)
	for i, x := range st.order {
		if x == k {
			st.order = append(st.order[:i], st.order[i+1:]...)
			break
		}
	}
}

// confirm confirms the pending revocation.
func (st *consumeStream) confirm(ctx context.Context) error {
	g := st.group
	g.confirmBy = time.Time{}
	if err := g.sess.Confirm(ctx, g.confirmEpoch); err != nil && !isStale(err) {
		return st.s.toAPIError(ctx, st.s.groupError(g.sub.GetGroupId(), err))
	}
	return nil
}

// commitPositions commits the read positions of owned partitions that
// moved since their last commit.
func (st *consumeStream) commitPositions(ctx context.Context, keys []subKey) error {
	g := st.group
	var offs []coordinator.OffsetCommit
	for _, k := range keys {
		sub := st.subs[k]
		if sub == nil || sub.offset == g.committed[k] {
			continue
		}
		offs = append(offs, coordinator.OffsetCommit{TP: coordinator.TP{Topic: k.topic, Partition: k.part}, Offset: int64(sub.offset)})
	}
	if len(offs) == 0 {
		return nil
	}
	if err := g.sess.Commit(ctx, g.epoch, offs); err != nil {
		return err
	}
	for _, o := range offs {
		g.committed[subKey{o.Topic, o.Partition}] = uint64(o.Offset)
	}
	return nil
}

func (st *consumeStream) autoCommitOwned(ctx context.Context) error {
	keys := make([]subKey, 0, len(st.group.owned))
	for k := range st.group.owned {
		keys = append(keys, k)
	}
	if err := st.commitPositions(ctx, keys); err != nil && !isStale(err) {
		return st.s.toAPIError(ctx, st.s.groupError(st.group.sub.GetGroupId(), err))
	}
	return nil
}

// commitGroup answers a StreamCommit.
func (st *consumeStream) commitGroup(ctx context.Context, sc *sluicev1.StreamCommit) error {
	g := st.group
	if g == nil {
		return st.send(&sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_CommitResult{CommitResult: &sluicev1.CommitResult{
			Error: invalidField("commit", "the stream has not joined a group").proto()}}})
	}
	offs := make([]coordinator.OffsetCommit, 0, len(sc.GetOffsets()))
	for _, o := range sc.GetOffsets() {
		offs = append(offs, coordinator.OffsetCommit{TP: coordinator.TP{Topic: o.GetTopic(), Partition: o.GetPartition()},
			Offset: o.GetOffset(), Metadata: o.GetMetadata()})
	}
	res := &sluicev1.CommitResult{}
	if err := g.sess.Commit(ctx, g.epoch, offs); err != nil {
		res.Error = st.s.toAPIError(ctx, st.s.groupError(g.sub.GetGroupId(), err)).proto()
	} else {
		for _, o := range offs {
			g.committed[subKey{o.Topic, o.Partition}] = uint64(o.Offset)
		}
	}
	if err := st.send(&sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_CommitResult{CommitResult: res}}); err != nil {
		return err
	}
	if !g.confirmBy.IsZero() {
		return st.confirm(ctx)
	}
	return nil
}

// leaveGroup ends the membership when the stream ends: a last automatic
// commit, then the member leaves (a static member keeps its place).
func (st *consumeStream) leaveGroup(ctx context.Context) {
	g := st.group
	if g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if g.autoCommit != nil {
		_ = st.autoCommitOwned(ctx)
		g.autoCommit.Stop()
	}
	g.heartbeat.Stop()
	_ = g.sess.Close(ctx)
}
