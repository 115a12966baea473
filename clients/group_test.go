package clients_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// crashDialer lets a test cut a client off the network at once, as if its process died.
type crashDialer struct {
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func (d *crashDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return nil, errors.New("crashed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *crashDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		_ = c.Close()
	}
}

// groupRun is a group of consumers under test and what they delivered.
type groupRun struct {
	t     *testing.T
	nodes []*servertest.Node
	topic string

	mu        sync.Mutex
	delivered map[string]int // record value -> deliveries
	errs      []error
}

func (g *groupRun) fail(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.errs = append(g.errs, fmt.Errorf(format, args...))
}

func (g *groupRun) liveNodes() []*servertest.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.nodes)
}

func (g *groupRun) committed(ctx context.Context, tp clients.TopicPartition) int64 {
	for _, n := range g.liveNodes() {
		resp, err := n.Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: "e2e",
			Partitions: []*sluicev1.TopicPartitions{{Topic: tp.Topic, Partitions: []int32{tp.Partition}}}})
		if err == nil {
			return resp.GetOffsets()[0].GetOffset()
		}
	}
	return -2
}

// member is one consumer of the group, polling on its own goroutine.
type member struct {
	gc     *clients.GroupConsumer
	dialer *crashDialer
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	first  map[clients.TopicPartition]bool // partitions it read since it got them
}

func (g *groupRun) start(brokers []string) *member {
	m := &member{dialer: &crashDialer{}, stop: make(chan struct{}), done: make(chan struct{}), first: map[clients.TopicPartition]bool{}}
	gc, err := clients.NewGroupConsumer("e2e", clients.GroupConfig{
		Topics: []string{g.topic}, AutoCommitInterval: 50 * time.Millisecond, SessionTimeout: 10 * time.Second,
		OnRevoked: func(_ context.Context, tps []clients.TopicPartition) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, tp := range tps {
				delete(m.first, tp)
			}
		},
	}, clients.Brokers(brokers...), clients.DialOptions(grpc.WithContextDialer(m.dialer.dial)),
		clients.RetryBackoff(5*time.Millisecond, 50*time.Millisecond), clients.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		g.t.Fatal(err)
	}
	m.gc = gc
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			recs, err := gc.Poll(ctx)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, clients.ErrClosed) {
				g.t.Logf("poll: %v", err)
			}
			for _, r := range recs {
				tp := clients.TopicPartition{Topic: r.Topic, Partition: r.Partition}
				m.mu.Lock()
				seen := m.first[tp]
				m.first[tp] = true
				m.mu.Unlock()
				if !seen {
					// The first record after getting a partition is at the committed
					// offset (nobody commits it meanwhile: this member has not
					// processed anything of it yet).
					cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
					c := g.committed(cctx, tp)
					ccancel()
					if c >= 0 && r.Offset != c {
						g.fail("%v: first record at %d, committed %d", tp, r.Offset, c)
					}
				}
				g.mu.Lock()
				g.delivered[string(r.Value)]++
				g.mu.Unlock()
			}
		}
	}()
	return m
}

// watchCommits checks, until stopped, that committed offsets never move backward.
func (g *groupRun) watchCommits(ctx context.Context) (stop, done chan struct{}) {
	stop, done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		last := map[string]int64{}
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for _, n := range g.liveNodes() {
				resp, err := n.Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: "e2e"})
				if err != nil {
					continue
				}
				for _, o := range resp.GetOffsets() {
					k := fmt.Sprintf("%s/%d", o.GetTopic(), o.GetPartition())
					if o.GetOffset() < last[k] {
						g.fail("%s committed offset moved back from %d to %d", k, last[k], o.GetOffset())
					}
					last[k] = o.GetOffset()
				}
				break
			}
		}
	}()
	return stop, done
}

// crash cuts the member off without committing or leaving.
func (m *member) crash() {
	m.dialer.crash()
	close(m.stop)
	<-m.done
	_ = m.gc.Close()
}

func (m *member) close() {
	close(m.stop)
	<-m.done
	_ = m.gc.Close()
}

// TestGroupConsumerEndToEnd consumes a topic with a group whose members crash and
// join while records are produced: every record is delivered at least once, committed
// offsets never move backward, and a partition's new owner resumes at its committed
// offset.
func TestGroupConsumerEndToEnd(t *testing.T) {
	n := servertest.Start(t, servertest.Config(t.TempDir()))
	groupScenario(t, []*servertest.Node{n}, 1, nil)
}

// TestGroupConsumerCoordinatorFailover is the same on three nodes, and the node
// coordinating the group is shut down halfway: the members follow the coordinator to
// its new node and keep their partitions.
func TestGroupConsumerCoordinatorFailover(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	groupScenario(t, c.Nodes, 3, func(ctx context.Context, g *groupRun) {
		var coord int32
		for coord == 0 {
			resp, err := g.nodes[0].Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: "e2e"})
			if err != nil {
				t.Fatal(err)
			}
			coord = resp.GetCoordinator()
		}
		t.Logf("stopping node %d, the group's coordinator", coord)
		for i, n := range g.nodes {
			if int32(n.Config.NodeID) == coord {
				n.Stop(t)
				g.mu.Lock()
				g.nodes = slices.Delete(slices.Clone(g.nodes), i, i+1)
				g.mu.Unlock()
				return
			}
		}
		t.Fatalf("no node %d", coord)
	})
}

// groupScenario runs members a, b, c; a crashes; midway runs (if set); d joins; b
// crashes; c and d close. Records are produced between the steps, and each step waits
// until every record so far was delivered.
func groupScenario(t *testing.T, nodes []*servertest.Node, rf int32, midway func(context.Context, *groupRun)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const parts, total = 6, 1200
	if _, err := nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "ev", Partitions: parts, ReplicationFactor: rf}); err != nil {
		t.Fatal(err)
	}
	var brokers []string
	for _, n := range nodes {
		brokers = append(brokers, n.Server.Addr())
	}
	g := &groupRun{t: t, nodes: nodes, topic: "ev", delivered: map[string]int{}}
	stopWatch, watchDone := g.watchCommits(ctx)
	p, err := clients.NewProducer(clients.Brokers(brokers...), clients.Linger(time.Millisecond),
		clients.RetryBackoff(5*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(from, to int) {
		var recs []*clients.Record
		for i := from; i < to; i++ {
			recs = append(recs, &clients.Record{Topic: "ev", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitDelivered := func(n int) {
		for {
			g.mu.Lock()
			got := 0
			for i := 0; i < n; i++ {
				if g.delivered[fmt.Sprintf("v%d", i)] > 0 {
					got++
				}
			}
			g.mu.Unlock()
			if got == n {
				return
			}
			select {
			case <-ctx.Done():
				missing := map[string]int{}
				for i := 0; i < n; i++ {
					if g.delivered[fmt.Sprintf("v%d", i)] == 0 {
						missing[string(rune('0'+clientsKeyPartition(i, parts)))]++
					}
				}
				for _, nd := range g.liveNodes() {
					dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
					resp, err := nd.Group.DescribeGroup(dctx, &sluicev1.DescribeGroupRequest{GroupId: "e2e"})
					dcancel()
					t.Logf("node %d: describe %v %v", nd.Config.NodeID, resp, err)
				}
				t.Fatalf("only %d of %d records delivered; missing by partition %v", got, n, missing)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	a, b, c := g.start(brokers), g.start(brokers), g.start(brokers)
	produce(0, total/4)
	waitDelivered(total / 4)
	a.crash() // its partitions move to b and c without a commit from a
	if midway != nil {
		midway(ctx, g)
	}
	produce(total/4, total/2)
	waitDelivered(total / 2)
	d := g.start(brokers) // joins: partitions move to it incrementally
	produce(total/2, 3*total/4)
	waitDelivered(3 * total / 4)
	b.crash()
	produce(3*total/4, total)
	waitDelivered(total)
	c.close()
	d.close()
	close(stopWatch)
	<-watchDone

	g.mu.Lock()
	for _, err := range g.errs {
		t.Error(err)
	}
	dups := 0
	for _, k := range g.delivered {
		dups += k - 1
	}
	g.mu.Unlock()
	t.Logf("%d records, %d delivered more than once", total, dups)

	// The members that closed committed everything they read.
	resp, err := g.liveNodes()[0].Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetState() != sluicev1.GroupState_GROUP_STATE_EMPTY {
		t.Fatalf("group after every member left: %v", resp.GetState())
	}
	for _, pl := range resp.GetOffsets() {
		if pl.GetLag() != 0 {
			t.Errorf("%s/%d: lag %d after a graceful close", pl.GetTopic(), pl.GetPartition(), pl.GetLag())
		}
	}
}

func clientsKeyPartition(i int, parts int32) int32 {
	return batch.KeyPartition(fmt.Appendf(nil, "k%d", i), parts)
}
