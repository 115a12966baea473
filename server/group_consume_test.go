package server_test

import (
	"fmt"
	"testing"
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// groupStream is a Consume stream in group mode, read by the test.
type groupStream struct {
	t        *testing.T
	stream   sluicev1.ConsumerService_ConsumeClient
	assigned map[string]bool // "topic/partition"
	epoch    int32
	seen     map[string]bool // record values
	pending  any             // a Recv in flight (recvUntilQuiet)
}

func joinStream(t *testing.T, c sluicev1.ConsumerServiceClient, gs *sluicev1.GroupSubscription) *groupStream {
	t.Helper()
	st, err := c.Consume(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*sluicev1.ConsumeRequest{
		{Request: &sluicev1.ConsumeRequest_Group{Group: gs}},
		{Request: &sluicev1.ConsumeRequest_Credit{Credit: &sluicev1.Credit{Bytes: 1 << 30}}},
	} {
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	return &groupStream{t: t, stream: st, assigned: map[string]bool{}, seen: map[string]bool{}}
}

type streamResult struct {
	m   *sluicev1.ConsumeResponse
	err error
}

// recvUntilQuiet handles messages for a short while (a stream with nothing
// to say must not block a test that reads several in turn).
func (g *groupStream) recvUntilQuiet() {
	g.t.Helper()
	if g.pending == nil {
		ch := make(chan streamResult, 1)
		go func() {
			m, err := g.stream.Recv()
			ch <- streamResult{m, err}
		}()
		g.pending = ch
	}
	select {
	case r := <-g.pending.(chan streamResult):
		g.pending = nil
		if r.err != nil {
			g.t.Fatal(r.err)
		}
		g.handle(r.m)
	case <-time.After(20 * time.Millisecond):
	}
}

// recv handles one message; it returns it.
func (g *groupStream) recv() *sluicev1.ConsumeResponse {
	g.t.Helper()
	var (
		m   *sluicev1.ConsumeResponse
		err error
	)
	if g.pending != nil { // a Recv of recvUntilQuiet is in flight: take its result
		r := <-g.pending.(chan streamResult)
		g.pending = nil
		m, err = r.m, r.err
	} else {
		m, err = g.stream.Recv()
	}
	if err != nil {
		g.t.Fatal(err)
	}
	g.handle(m)
	return m
}

func (g *groupStream) handle(m *sluicev1.ConsumeResponse) {
	switch {
	case m.GetAssignment() != nil:
		g.assigned = map[string]bool{}
		for _, ap := range m.GetAssignment().GetAssigned() {
			for _, p := range ap.GetPartitions() {
				g.assigned[fmt.Sprintf("%s/%d", ap.GetTopic(), p)] = true
			}
		}
		g.epoch = m.GetAssignment().GetMemberEpoch()
	case m.GetBatch() != nil:
		b := m.GetBatch()
		if !g.assigned[fmt.Sprintf("%s/%d", b.GetTopic(), b.GetPartition())] {
			g.t.Fatalf("batch of %s/%d, not assigned (%v)", b.GetTopic(), b.GetPartition(), g.assigned)
		}
		for _, r := range b.GetBatch().GetRecords() {
			g.seen[string(r.GetValue())] = true
		}
	case m.GetPartitionError() != nil:
		g.t.Fatalf("partition error: %v", m.GetPartitionError())
	}
}

// TestConsumeGroupMode: two thin-client streams share a topic through the
// server-side group; one leaves, the other takes its partitions over and
// resumes from the committed offsets.
func TestConsumeGroupMode(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "ev", 4, nil)
	for p := int32(0); p < 4; p++ {
		produce(t, n, "ev", p, records(3, fmt.Sprintf("p%d", p)))
	}
	gs := &sluicev1.GroupSubscription{GroupId: "thin", Topics: []string{"ev"}}
	a := joinStream(t, n.Consumer, gs)
	// a owns all four partitions and reads the twelve records.
	for len(a.seen) < 12 {
		a.recv()
	}
	if len(a.assigned) != 4 {
		t.Fatalf("a assigned %v", a.assigned)
	}
	// a commits two partitions by hand.
	commit := &sluicev1.StreamCommit{Offsets: []*sluicev1.CommitPosition{{Topic: "ev", Partition: 0, Offset: 3}, {Topic: "ev", Partition: 1, Offset: 3}}}
	if err := a.stream.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Commit{Commit: commit}}); err != nil {
		t.Fatal(err)
	}
	for m := a.recv(); m.GetCommitResult() == nil; m = a.recv() {
	}

	b := joinStream(t, n.Consumer, gs)
	// a gives two partitions up; b gets them after a confirms (on its
	// next commit in manual mode, or a heartbeat interval later).
	for len(a.assigned) != 2 {
		a.recv()
	}
	if err := a.stream.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Commit{Commit: &sluicev1.StreamCommit{}}}); err != nil {
		t.Fatal(err)
	}
	for len(b.assigned) != 2 {
		b.recv()
	}
	for k := range b.assigned {
		if a.assigned[k] {
			t.Fatalf("%s owned by both", k)
		}
	}
	// a leaves; b owns everything and reads what was not committed.
	if err := a.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := a.stream.Recv(); err != nil {
			break
		}
	}
	for len(b.assigned) != 4 {
		b.recv()
	}
	produce(t, n, "ev", 0, records(1, "late"))
	for !b.seen["late-v0"] {
		b.recv()
	}
	for p := 2; p < 4; p++ { // never committed: read again from the start
		for !b.seen[fmt.Sprintf("p%d-v2", p)] {
			b.recv()
		}
	}
	if b.seen["p0-v0"] || b.seen["p1-v0"] {
		t.Fatalf("b re-read committed records: %v", b.seen)
	}
}

// TestConsumeGroupModeOnAnyNode: thin clients joining a group through each
// node of a cluster are members of one group, whichever node coordinates
// it; commits go through too.
func TestConsumeGroupModeOnAnyNode(t *testing.T) { consumeGroupModeOnAnyNode(t, 3) }

// With one replica per partition most streams own partitions their node
// holds no replica of: those are read through a remote feed.
func TestConsumeGroupModeWithoutLocalReplicas(t *testing.T) { consumeGroupModeOnAnyNode(t, 1) }

func consumeGroupModeOnAnyNode(t *testing.T, rf int32) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "ev", Partitions: 4, ReplicationFactor: rf}); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 4; p++ {
		produce(t, c.Nodes[0], "ev", p, records(2, fmt.Sprintf("p%d", p)))
	}
	gs := &sluicev1.GroupSubscription{GroupId: "anynode", Topics: []string{"ev"}, AutoCommitIntervalMs: 100}
	var streams []*groupStream
	start := time.Now()
	t.Logf("joining")
	for _, n := range c.Nodes {
		streams = append(streams, joinStream(t, n.Consumer, gs))
	}
	// Every stream gets partitions; together they read every record.
	seen := func() int {
		all := map[string]bool{}
		for _, s := range streams {
			for v := range s.seen {
				all[v] = true
			}
		}
		return len(all)
	}
	for i := 0; ; i = (i + 1) % len(streams) {
		done, owned := seen() == 8, 0
		for _, s := range streams {
			done = done && len(s.assigned) > 0
			owned += len(s.assigned)
		}
		done = done && owned == 4
		if done {
			break
		}
		streams[i].recvUntilQuiet()
	}
	t.Logf("all read after %v", time.Since(start))
	d, err := c.Nodes[1].Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: "anynode"})
	if err != nil || len(d.GetMembers()) != 3 {
		t.Fatalf("describe: %v %v", d, err)
	}
	for _, s := range streams {
		var offs []*sluicev1.CommitPosition
		for k := range s.assigned {
			var p int32
			fmt.Sscanf(k, "ev/%d", &p)
			offs = append(offs, &sluicev1.CommitPosition{Topic: "ev", Partition: p, Offset: 2})
		}
		if err := s.stream.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Commit{Commit: &sluicev1.StreamCommit{Offsets: offs}}}); err != nil {
			t.Fatal(err)
		}
		for m := s.recv(); m.GetCommitResult() == nil; m = s.recv() {
		}
	}
	t.Logf("committed after %v", time.Since(start))
	fo, err := c.Nodes[2].Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: "anynode"})
	if err != nil || len(fo.GetOffsets()) != 4 {
		t.Fatalf("offsets: %v %v", fo, err)
	}
}
