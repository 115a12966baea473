package clients_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

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

func (g *groupRun) committed(ctx context.Context, tp clients.TopicPartition) int64 {
	for _, n := range g.nodes {
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
			recs, _ := gc.Poll(ctx)
			cancel()
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const parts, total = 6, 1200
	if _, err := n.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "ev", Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	brokers := []string{n.Server.Addr()}
	g := &groupRun{t: t, nodes: []*servertest.Node{n}, topic: "ev", delivered: map[string]int{}}

	// Committed offsets never move backward.
	watchDone := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() {
		defer close(watchDone)
		last := map[string]int64{}
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(10 * time.Millisecond):
			}
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
		}
	}()

	p, err := clients.NewProducer(clients.Brokers(brokers...), clients.Linger(time.Millisecond))
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
				t.Fatalf("only %d of %d records delivered", got, n)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	a, b, c := g.start(brokers), g.start(brokers), g.start(brokers)
	produce(0, total/4)
	waitDelivered(total / 4)
	a.crash() // its partitions move to b and c without a commit from a
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
	defer g.mu.Unlock()
	for _, err := range g.errs {
		t.Error(err)
	}
	dups := 0
	for _, k := range g.delivered {
		dups += k - 1
	}
	t.Logf("%d records, %d delivered more than once", total, dups)

	// A new member resumes from the committed offsets: nothing is read twice.
	resp, err := n.Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: "e2e"})
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
