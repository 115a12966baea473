package clients_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// TestGroupManualCommitAcrossCoordinatorStop commits, by hand, records polled just
// before the group's coordinator stopped. The commit must land on the new coordinator:
// nothing else will commit those records, since Poll returns nothing more until new
// records arrive.
func TestGroupManualCommitAcrossCoordinatorStop(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, group, parts = "mc", "mc-group", 3
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: topic, Partitions: parts, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	var brokers []string
	for _, n := range c.Nodes {
		brokers = append(brokers, n.Server.Addr())
	}
	p, err := clients.NewProducer(clients.Brokers(brokers...), clients.RetryBackoff(5*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(from, to int) {
		t.Helper()
		var recs []*clients.Record
		for i := from; i < to; i++ {
			recs = append(recs, &clients.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	gc, err := clients.NewGroupConsumer(group, clients.GroupConfig{Topics: []string{topic}, ManualCommit: true,
		SessionTimeout: 10 * time.Second}, clients.Brokers(brokers...),
		clients.RetryBackoff(5*time.Millisecond, 100*time.Millisecond), clients.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	pollUntil := func(want int) {
		t.Helper()
		for got := 0; got < want; {
			recs, err := gc.Poll(ctx)
			if err != nil {
				t.Fatalf("poll: %v (%d of %d records; assigned %v)", err, got, want, gc.Assigned())
			}
			got += len(recs)
		}
	}
	produce(0, 30)
	pollUntil(30)
	if err := gc.Commit(ctx); err != nil {
		t.Fatalf("commit before the stop: %v", err)
	}

	var coord uint64
	for coord == 0 {
		d, err := c.Nodes[0].Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: group})
		if err != nil {
			t.Fatal(err)
		}
		coord = uint64(d.GetCoordinator())
	}
	produce(30, 60)
	pollUntil(30)
	var live *servertest.Node
	for _, n := range c.Nodes {
		if n.Config.NodeID == coord {
			t.Logf("stopping node %d, the group's coordinator", coord)
			n.Stop(t)
		} else if live == nil {
			live = n
		}
	}
	// The application's one commit after its last Poll.
	if err := gc.Commit(ctx); err != nil {
		t.Errorf("commit after the coordinator stopped: %v", err)
	}
	// Until a new coordinator is elected, the live node cannot forward the fetch.
	var resp *sluicev1.FetchOffsetsResponse
	for {
		resp, err = live.Group.FetchOffsets(ctx, &sluicev1.FetchOffsetsRequest{GroupId: group})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("fetch offsets: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var sum int64
	for _, o := range resp.GetOffsets() {
		sum += o.GetOffset()
	}
	if sum != 60 {
		t.Fatalf("committed offsets %v sum to %d, want 60", resp.GetOffsets(), sum)
	}
}
