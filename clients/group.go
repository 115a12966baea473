package clients

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// TopicPartition names a partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// GroupConfig is what a GroupConsumer consumes and how it commits.
type GroupConfig struct {
	// Topics to consume, and/or TopicPattern (RE2) matched against topic names (matching
	// topics created later are picked up). One of them is required.
	Topics       []string
	TopicPattern string
	// InstanceID makes the member static: restarting with the same id within the
	// session timeout keeps its partitions without a rebalance.
	InstanceID string
	// ClientID is shown by DescribeGroup.
	ClientID string
	// Assignor preferred when the group is created (uniform sticky when unset).
	Assignor sluicev1.Assignor
	// SessionTimeout after which a silent member is expelled (0: the server's, 45s).
	SessionTimeout time.Duration
	// AutoCommitInterval is how often processed positions are committed (default 5s).
	// A record counts as processed once the next Poll is called (or Close). ManualCommit
	// turns automatic commits off: call Commit.
	AutoCommitInterval time.Duration
	ManualCommit       bool
	// ResetTo is where a partition without a committed offset starts: AtStart (default)
	// or AtEnd.
	ResetTo Offset
	// OnAssigned is called with partitions the member was given, before Poll returns
	// their records. OnRevoked is called with partitions taken away, before they go to
	// another member: in manual mode, commit there. Both run on the membership goroutine.
	OnAssigned func(ctx context.Context, partitions []TopicPartition)
	OnRevoked  func(ctx context.Context, partitions []TopicPartition)
}

// GroupConsumer consumes as a member of a consumer group: the group's coordinator
// assigns partitions (rebalancing incrementally, so partitions this member keeps are
// never paused), and the consumer fetches them from their leaders and commits its
// positions. Delivery is at-least-once: positions are committed only for records the
// application has processed, so after a crash or a rebalance a record may be delivered
// again, but never skipped.
//
// One goroutine per GroupConsumer owns the membership stream (joining, heartbeats,
// assignments, automatic commits, reconnecting to a new coordinator with the member's id
// and epoch); Close stops it after leaving the group.
type GroupConsumer struct {
	group  string
	gc     GroupConfig
	cons   *Consumer
	logger *slog.Logger

	mu struct {
		sync.Mutex
		memberID  string
		epoch     int32
		coordAddr string
		owned     map[TopicPartition]bool
		returned  map[TopicPartition]int64 // next offset after records Poll returned
		processed map[TopicPartition]int64 // positions safe to commit
		committed map[TopicPartition]int64
		// handed are the partitions of the records the last Poll returned: the
		// application may still be processing them until it calls Poll again.
		handed map[TopicPartition]bool
		// revoking are partitions taken away whose records may still be in the
		// application's hands; they are committed and confirmed once it polls.
		revoking map[TopicPartition]bool
		closed   bool
		fatal    error // the membership ended for good (a static member replaced)
	}
	polled chan struct{} // capacity 1: Poll was called (handed records are processed)
	// confirmPending: the coordinator awaits a confirmation of a revocation. Only the
	// membership goroutine touches it.
	confirmPending bool
	leave          chan struct{} // closed by Close: leave the group and stop
	done           chan struct{} // closed when the membership goroutine ended
}

// NewGroupConsumer joins group (in the background) with the subscription in gc.
func NewGroupConsumer(group string, gc GroupConfig, opts ...ConsumerOpt) (*GroupConsumer, error) {
	if group == "" {
		return nil, errors.New("sluice: group id is required")
	}
	if len(gc.Topics) == 0 && gc.TopicPattern == "" {
		return nil, errors.New("sluice: GroupConfig needs Topics or TopicPattern")
	}
	if gc.AutoCommitInterval <= 0 {
		gc.AutoCommitInterval = 5 * time.Second
	}
	if gc.ResetTo.kind != offsetEnd {
		gc.ResetTo = AtStart()
	}
	cons, err := NewConsumer(opts...)
	if err != nil {
		return nil, err
	}
	g := &GroupConsumer{group: group, gc: gc, cons: cons, logger: cons.cfg.logger.With("group", group),
		polled: make(chan struct{}, 1), leave: make(chan struct{}), done: make(chan struct{})}
	g.mu.owned = map[TopicPartition]bool{}
	g.mu.handed = map[TopicPartition]bool{}
	g.mu.revoking = map[TopicPartition]bool{}
	g.mu.returned = map[TopicPartition]int64{}
	g.mu.processed = map[TopicPartition]int64{}
	g.mu.committed = map[TopicPartition]int64{}
	g.mu.coordAddr = cons.cfg.brokers[0]
	go g.run()
	return g, nil
}

// Assigned returns the partitions the member owns now, sorted.
func (g *GroupConsumer) Assigned() []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]TopicPartition, 0, len(g.mu.owned))
	for tp := range g.mu.owned {
		out = append(out, tp)
	}
	sortTPs(out)
	return out
}

// MemberID is the member's id in the group ("" until it joined).
func (g *GroupConsumer) MemberID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.memberID
}

func sortTPs(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}

// Poll returns the next records of the member's partitions, waiting until some arrive or
// ctx ends. Calling Poll marks the records of the previous Poll as processed (they are
// committed at the next automatic commit).
func (g *GroupConsumer) Poll(ctx context.Context) ([]*Record, error) {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	if g.mu.fatal != nil {
		err := g.mu.fatal
		g.mu.Unlock()
		return nil, err
	}
	if !g.gc.ManualCommit {
		for tp, off := range g.mu.returned {
			g.mu.processed[tp] = off
		}
	}
	clear(g.mu.handed)
	g.mu.Unlock()
	select { // a revocation waiting for these records can go on
	case g.polled <- struct{}{}:
	default:
	}
	recs, err := g.cons.Poll(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	kept := recs[:0]
	for _, r := range recs {
		tp := TopicPartition{r.Topic, r.Partition}
		if !g.mu.owned[tp] {
			continue // revoked while the fetch was in flight
		}
		kept = append(kept, r)
		g.mu.handed[tp] = true
		if r.Offset+1 > g.mu.returned[tp] {
			g.mu.returned[tp] = r.Offset + 1
		}
	}
	return kept, err
}

// Commit commits the positions of every record Poll has returned so far (for
// ManualCommit; with automatic commits it commits now).
func (g *GroupConsumer) Commit(ctx context.Context) error {
	g.mu.Lock()
	for tp, off := range g.mu.returned {
		g.mu.processed[tp] = off
	}
	g.mu.Unlock()
	return g.commitProcessed(ctx, nil, true)
}

// CommitOffsets commits explicit positions (the offset of the next record to consume).
func (g *GroupConsumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	g.mu.Lock()
	for tp, off := range offsets {
		g.mu.processed[tp] = off
	}
	g.mu.Unlock()
	tps := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp)
	}
	return g.commitProcessed(ctx, tps, true)
}

// commitProcessed commits the processed positions of owned partitions, and of those
// being revoked (of only when given), that moved since their last commit.
//
// A commit outlives a coordinator failover: groupCall follows the coordinator to its
// new node, and the request is rebuilt for every attempt, so one refused for a stale
// epoch because the member rejoined meanwhile (a rejoin bumps its epoch) is sent again
// with the epoch of the new assignment. Only partitions the member still owns are
// sent: positions of partitions it lost were forgotten with them. An application that
// commits after each Poll may never call Commit again for these records (Poll returns
// nothing until new records arrive), so giving up on the first failure would leave
// them uncommitted for good. That persistence is for the application's commits
// (persist); the membership goroutine's own commits give up sooner, since it must go
// on to rejoin the new coordinator (and a new epoch only arrives through it).
func (g *GroupConsumer) commitProcessed(ctx context.Context, only []TopicPartition, persist bool) error {
	deadline := time.Now().Add(g.cons.cfg.requestTimeout)
	var lastErr error
	for attempt := 0; ; attempt++ {
		req := g.commitRequest(only)
		if len(req.Offsets) == 0 || req.MemberId == "" {
			if req.MemberId == "" {
				return lastErr // the membership was lost: the commit did not land
			}
			return nil
		}
		err := g.groupCall(ctx, persist, func(ctx context.Context, c sluicev1.GroupServiceClient) error {
			_, err := c.CommitOffsets(ctx, req)
			return err
		})
		if err == nil {
			g.mu.Lock()
			for _, o := range req.Offsets {
				g.mu.committed[TopicPartition{o.GetTopic(), o.GetPartition()}] = o.GetOffset()
			}
			g.mu.Unlock()
			return nil
		}
		e, _ := AsError(err)
		if !persist || ReasonOf(err) != sluicev1.ErrorReason_ERROR_REASON_STALE_MEMBER_EPOCH ||
			(e != nil && e.Metadata["replaced"] == "true") || !time.Now().Before(deadline) {
			return err
		}
		// The member rejoined (or its assignment moved on): wait for its new epoch.
		lastErr = err
		select {
		case <-ctx.Done():
			return err
		case <-time.After(g.cons.cfg.backoff(attempt)):
		}
	}
}

// commitRequest is the commit of the processed positions that moved since their last
// commit, with the member's current id and epoch.
func (g *GroupConsumer) commitRequest(only []TopicPartition) *sluicev1.CommitOffsetsRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	req := &sluicev1.CommitOffsetsRequest{GroupId: g.group, MemberId: g.mu.memberID, MemberEpoch: g.mu.epoch}
	consider := slices.Clone(only)
	if consider == nil {
		for tp := range g.mu.processed {
			consider = append(consider, tp)
		}
	}
	sortTPs(consider)
	for _, tp := range consider {
		off, ok := g.mu.processed[tp]
		if !ok || (!g.mu.owned[tp] && !g.mu.revoking[tp]) {
			continue
		}
		if c, ok := g.mu.committed[tp]; ok && c == off {
			continue
		}
		req.Offsets = append(req.Offsets, &sluicev1.OffsetCommit{Topic: tp.Topic, Partition: tp.Partition, Offset: off})
	}
	return req
}

// groupCall runs a unary group call on the coordinator. It follows NOT_COORDINATOR
// hints, and when the coordinator cannot be reached (its node died: the call fails
// with UNAVAILABLE before a new one is elected) it tries the other brokers, which
// forward to the coordinator once there is one: until requestTimeout when persist,
// else for a few attempts (the membership goroutine rejoins instead). Group calls are
// safe to repeat: a commit sets offsets, a fetch reads them.
func (g *GroupConsumer) groupCall(ctx context.Context, persist bool, fn func(context.Context, sluicev1.GroupServiceClient) error) error {
	deadline := time.Now().Add(g.cons.cfg.requestTimeout)
	for attempt := 0; ; attempt++ {
		g.mu.Lock()
		addr := g.mu.coordAddr
		g.mu.Unlock()
		conn, err := g.cons.cl.conn(addr)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, g.cons.cfg.requestTimeout)
		err = fromStatus(fn(rctx, sluicev1.NewGroupServiceClient(conn)))
		cancel()
		if !coordinatorUnreachable(err) || ctx.Err() != nil || !time.Now().Before(deadline) || (!persist && attempt >= 4) {
			return err
		}
		g.followCoordinator(err, attempt)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(g.cons.cfg.backoff(min(attempt, 6))):
		}
	}
}

// coordinatorUnreachable reports whether err says the call did not reach a working
// coordinator: another node coordinates the group (or is loading it), or the node
// called (or the one it forwarded to) is down.
func coordinatorUnreachable(err error) bool {
	e, ok := AsError(err)
	if !ok {
		return false
	}
	switch e.Reason {
	case sluicev1.ErrorReason_ERROR_REASON_NOT_COORDINATOR, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE:
		return true
	case sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED:
		return e.Code == codes.Unavailable
	}
	return false
}

// followCoordinator moves to the coordinator an error names, or else to the broker
// after the current one.
func (g *GroupConsumer) followCoordinator(err error, attempt int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := AsError(err); ok && e.Metadata["coordinator_address"] != "" {
		g.mu.coordAddr = e.Metadata["coordinator_address"]
		return
	}
	b := g.cons.cfg.brokers
	if i := slices.Index(b, g.mu.coordAddr); i >= 0 {
		g.mu.coordAddr = b[(i+1)%len(b)]
		return
	}
	g.mu.coordAddr = b[(attempt+1)%len(b)]
}

// Close commits processed positions (unless ManualCommit), leaves the group (a static
// member keeps its place until its session times out) and closes the consumer.
func (g *GroupConsumer) Close() error {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return nil
	}
	g.mu.closed = true
	if !g.gc.ManualCommit {
		for tp, off := range g.mu.returned {
			g.mu.processed[tp] = off
		}
	}
	g.mu.Unlock()
	close(g.leave)
	<-g.done
	return g.cons.Close()
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }
