package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/replication"
)

// node is a one-node cluster with a coordinator, on a data directory that
// survives reopen (a coordinator restart: the new leader rebuilds).
type node struct {
	host *replication.Host
	md   *cluster.Metadata
	c    *Coordinator
	reg  *prometheus.Registry
}

func openNode(t *testing.T, dir string, tweak ...func(*Config)) *node {
	t.Helper()
	h, err := replication.NewHost(replication.HostConfig{NodeID: 1, DataDir: dir, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	md, err := cluster.Open(ctxT(t), cluster.Config{NodeID: 1, Host: h, DataDir: dir, Addr: "127.0.0.1:1"})
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{NodeID: 1, Metadata: md, OffsetsPartitions: 3, CheckInterval: 10 * time.Millisecond, Registerer: reg}
	for _, f := range tweak {
		f(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &node{host: h, md: md, c: c, reg: reg}
}

func (n *node) close(t *testing.T) {
	t.Helper()
	for _, err := range []error{n.c.Close(), n.md.Close(), n.host.Close()} {
		if err != nil {
			t.Error(err)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// next waits for a session's next assignment.
func next(t *testing.T, s *Session) Assignment {
	t.Helper()
	for {
		if a, ok := s.Next(); ok {
			return a
		}
		select {
		case <-s.Notify():
		case <-s.Done():
			t.Fatalf("session ended: %v", s.Err())
		case <-time.After(30 * time.Second):
			t.Fatal("no assignment")
		}
	}
}

func TestCoordinatorJoinCommitRestart(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	ctx := ctxT(t)
	if _, err := n.md.CreateTopic(ctx, cluster.TopicSpec{Name: "t", Partitions: 4, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	sub := Subscription{Topics: []string{"t"}}
	a, err := n.c.Join(ctx, "g", JoinParams{Sub: sub, SessionTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	asg := next(t, a)
	if len(asg.Assigned) != 4 {
		t.Fatalf("first member got %v", asg.Assigned)
	}
	b, err := n.c.Join(ctx, "g", JoinParams{Sub: sub, SessionTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if bAsg := next(t, b); len(bAsg.Assigned) != 0 {
		t.Fatalf("b got partitions before a confirmed: %v", bAsg.Assigned)
	}
	asg = next(t, a)
	if len(asg.Revoking) != 2 || len(asg.Assigned) != 2 {
		t.Fatalf("a after b joined: %+v", asg)
	}
	// a commits what it gives up, then confirms.
	if err := n.c.Commit(ctx, "g", a.MemberID(), asg.Epoch, []OffsetCommit{{TP: asg.Revoking[0], Offset: 7, Metadata: "m"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Confirm(ctx, asg.Epoch); err != nil {
		t.Fatal(err)
	}
	bAsg := next(t, b)
	if len(bAsg.Assigned) != 2 {
		t.Fatalf("b after a confirmed: %+v", bAsg)
	}
	// a's old epoch can no longer commit what it gave up.
	err = n.c.Commit(ctx, "g", a.MemberID(), asg.Epoch, []OffsetCommit{{TP: asg.Revoking[0], Offset: 8}})
	var se *StaleEpochError
	if !errors.As(err, &se) {
		t.Fatalf("commit of a revoked partition: %v", err)
	}
	if err := n.c.Commit(ctx, "g", b.MemberID(), bAsg.Epoch, []OffsetCommit{{TP: bAsg.Assigned[1], Offset: 9}}); err != nil {
		t.Fatal(err)
	}
	gi, err := n.c.Describe(ctx, "g")
	if err != nil || gi.State != StateStable || len(gi.Members) != 2 {
		t.Fatalf("describe: %+v %v", gi, err)
	}
	if c := countMetric(t, n.reg, "sluice_group_lag_records"); c != 2 {
		t.Fatalf("lag metrics: %d series", c)
	}
	n.close(t)

	// Restart: the coordinator rebuilds from __consumer_offsets.
	n = openNode(t, dir)
	defer n.close(t)
	offs, err := n.c.Fetch(ctx, "g", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if offs[asg.Revoking[0]].Offset != 7 || offs[asg.Revoking[0]].Metadata != "m" || offs[bAsg.Assigned[1]].Offset != 9 {
		t.Fatalf("offsets after restart: %+v", offs)
	}
	gi2, err := n.c.Describe(ctx, "g")
	if err != nil || len(gi2.Members) != 2 || gi2.Epoch != gi.Epoch {
		t.Fatalf("group after restart: %+v %v", gi2, err)
	}
	// b rejoins with its id: same partitions, new epoch.
	b2, err := n.c.Join(ctx, "g", JoinParams{MemberID: b.MemberID(), MemberEpoch: bAsg.Epoch, Sub: sub, SessionTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b2Asg := next(t, b2)
	if b2.MemberID() != b.MemberID() || len(b2Asg.Assigned) != 2 || b2Asg.Assigned[0] != bAsg.Assigned[0] || b2Asg.Epoch <= bAsg.Epoch {
		t.Fatalf("b after rejoin: %+v (before %+v)", b2Asg, bAsg)
	}
	// Fetches by a member are fenced like its commits.
	if _, err := n.c.Fetch(ctx, "g", b2.MemberID(), bAsg.Epoch, b2Asg.Assigned); !errors.As(err, &se) {
		t.Fatalf("fetch with the pre-rejoin epoch: %v", err)
	}
	if _, err := n.c.Fetch(ctx, "g", b2.MemberID(), b2Asg.Epoch, b2Asg.Assigned); err != nil {
		t.Fatal(err)
	}
	if err := b2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.c.Delete(ctx, "g"); !errors.Is(err, ErrGroupNotEmpty) {
		t.Fatalf("delete with a member: %v", err)
	}
}

func countMetric(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestCheckpointBoundsTheLog: the coordinator rewrites its live state and
// deletes older records, and a restart rebuilds the same offsets from the
// shorter log.
func TestCheckpointBoundsTheLog(t *testing.T) {
	dir := t.TempDir()
	small := func(c *Config) { c.CheckpointRecords = 50 }
	n := openNode(t, dir, small)
	ctx := ctxT(t)
	if _, err := n.md.CreateTopic(ctx, cluster.TopicSpec{Name: "t", Partitions: 4, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := n.c.Commit(ctx, "g", "", 0, []OffsetCommit{{TP: TP{"t", int32(i % 4)}, Offset: int64(i), Metadata: "m"}}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := n.c.partition(PartitionFor("g", 3))
	if err != nil {
		t.Fatal(err)
	}
	for p.StartOffset() == 0 { // the watch loop checkpoints; a failure guard bounds the wait
		select {
		case <-ctx.Done():
			t.Fatal("the log was never checkpointed")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if kept := p.HighWatermark() - p.StartOffset(); kept > 150 {
		t.Fatalf("%d records kept after a checkpoint", kept)
	}
	n.close(t)
	n = openNode(t, dir, small)
	defer n.close(t)
	offs, err := n.c.Fetch(ctx, "g", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(0); i < 4; i++ {
		if got := offs[TP{"t", i}]; got.Offset != int64(296+i) || got.Metadata != "m" {
			t.Fatalf("t/%d after restart: %+v", i, got)
		}
	}
}

// TestSilentMemberExpires: a member that stops heartbeating is expelled
// and its session ends with ErrUnknownMember.
func TestSilentMemberExpires(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.close(t)
	ctx := ctxT(t)
	if _, err := n.md.CreateTopic(ctx, cluster.TopicSpec{Name: "t", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := n.c.Join(ctx, "g", JoinParams{Sub: Subscription{Topics: []string{"t"}}, SessionTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("a silent member was never expelled")
	}
	if !errors.Is(s.Err(), ErrUnknownMember) {
		t.Fatalf("session ended with %v", s.Err())
	}
	gi, err := n.c.Describe(ctx, "g")
	if err != nil || len(gi.Members) != 0 || gi.State != StateEmpty {
		t.Fatalf("group after expiry: %+v %v", gi, err)
	}
}
