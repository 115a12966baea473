package chaos

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// TestGroupSurvivesCoordinatorKill runs a consumer group of three members while the
// node coordinating the group is killed with SIGKILL and started again. Every record
// must be delivered at least once, and no partition's committed offset may ever move
// backward, as seen by a monitor polling FetchOffsets throughout.
func TestGroupSurvivesCoordinatorKill(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	const (
		topic = "grp"
		group = "grp-members"
		parts = 6
		half  = 300
	)
	c.createTopic(topic, parts, nil)

	prod, err := clients.NewProducer(clients.Brokers(c.addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produceRange := func(from, to int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var recs []*clients.Record
		for i := from; i < to; i++ {
			recs = append(recs, &clients.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
		}
		for {
			err := prod.ProduceSync(ctx, recs...).FirstErr()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("produce %d..%d: %v", from, to, err)
			}
			// The idempotent producer makes a retry of the whole range safe.
			time.Sleep(200 * time.Millisecond)
		}
	}
	produceRange(0, half)

	var mu sync.Mutex
	delivered := map[string]int{}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for m := range 3 {
		gc, err := clients.NewGroupConsumer(group, clients.GroupConfig{Topics: []string{topic}, ManualCommit: true,
			ClientID: fmt.Sprintf("member-%d", m), SessionTimeout: 10 * time.Second},
			clients.Brokers(c.addrs()...), clients.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer gc.Close()
			for ctx.Err() == nil {
				recs, err := gc.Poll(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.Logf("member %d: poll: %v", m, err)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				mu.Lock()
				for _, r := range recs {
					delivered[string(r.Value)]++
				}
				mu.Unlock()
				// A record counts as processed once the next Poll returned, so
				// commit after every Poll, empty ones included.
				if err := gc.Commit(ctx); err != nil && ctx.Err() == nil {
					t.Logf("member %d: commit: %v", m, err)
				}
			}
		})
	}

	// The monitor: committed offsets never move backward.
	var monMu sync.Mutex
	highest := map[int32]int64{}
	var backward []string
	wg.Go(func() {
		for ctx.Err() == nil {
			for _, n := range c.upNodes() {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				resp, err := sluicev1.NewGroupServiceClient(n.conn).FetchOffsets(cctx, &sluicev1.FetchOffsetsRequest{GroupId: group})
				cancel()
				if err != nil {
					continue
				}
				monMu.Lock()
				for _, o := range resp.GetOffsets() {
					if o.GetOffset() < highest[o.GetPartition()] {
						backward = append(backward, fmt.Sprintf("partition %d: %d after %d (node %d)",
							o.GetPartition(), o.GetOffset(), highest[o.GetPartition()], n.id))
					}
					highest[o.GetPartition()] = max(highest[o.GetPartition()], o.GetOffset())
				}
				monMu.Unlock()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	waitDelivered := func(want int) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			mu.Lock()
			got := 0
			for i := range want {
				if delivered[fmt.Sprintf("v%d", i)] > 0 {
					got++
				}
			}
			mu.Unlock()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d records delivered", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitDelivered(half / 2)

	coord := 0
	for deadline := time.Now().Add(startDeadline); coord == 0 && time.Now().Before(deadline); {
		for _, n := range c.upNodes() {
			cctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			d, err := sluicev1.NewGroupServiceClient(n.conn).DescribeGroup(cctx, &sluicev1.DescribeGroupRequest{GroupId: group})
			cancel()
			if err == nil && d.GetCoordinator() > 0 {
				coord = int(d.GetCoordinator())
				break
			}
		}
	}
	if coord == 0 {
		t.Fatal("no coordinator found for the group")
	}
	t.Logf("killing node %d, the group's coordinator", coord)
	c.node(coord).kill()
	produceRange(half, 2*half)
	c.node(coord).start()
	waitDelivered(2 * half)

	// Every partition's commit reaches its high watermark: the group finished the log.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ps, err := c.metadata(topic)
		done := err == nil
		var hw int64
		monMu.Lock()
		for _, n := range c.upNodes() {
			cctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			lo, lerr := sluicev1.NewAdminServiceClient(n.conn).ListOffsets(cctx, &sluicev1.ListOffsetsRequest{Topic: topic})
			cancel()
			if lerr != nil {
				done = false
				break
			}
			for _, o := range lo.GetOffsets() {
				hw += o.GetOffset()
				done = done && highest[o.GetPartition()] == o.GetOffset()
			}
			break
		}
		monMu.Unlock()
		if done && len(ps) == parts && hw == 2*half {
			break
		}
		if time.Now().After(deadline) {
			for _, n := range c.upNodes() {
				cctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				fo, ferr := sluicev1.NewGroupServiceClient(n.conn).FetchOffsets(cctx, &sluicev1.FetchOffsetsRequest{GroupId: group})
				d, derr := sluicev1.NewGroupServiceClient(n.conn).DescribeGroup(cctx, &sluicev1.DescribeGroupRequest{GroupId: group})
				cancel()
				t.Logf("node %d: offsets %v (%v); group %v (%v)", n.id, fo, ferr, d, derr)
			}
			monMu.Lock()
			t.Fatalf("committed offsets %v never reached the high watermarks (sum %d)", highest, hw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	wg.Wait()
	monMu.Lock()
	defer monMu.Unlock()
	if len(backward) > 0 {
		t.Fatalf("committed offsets moved backward: %v", backward)
	}
	dups := 0
	for _, n := range delivered {
		dups += n - 1
	}
	t.Logf("%d records delivered, %d redelivered after the coordinator moved", len(delivered), dups)
}
