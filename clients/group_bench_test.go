package clients_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// deliveries records when a member received records of each partition.
type deliveries struct {
	mu       sync.Mutex
	first    time.Time
	assigned time.Time // first OnAssigned
	at       map[clients.TopicPartition][]time.Time
}

func (d *deliveries) note(recs []*clients.Record, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range recs {
		tp := clients.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if ts := d.at[tp]; len(ts) == 0 || ts[len(ts)-1] != now {
			d.at[tp] = append(d.at[tp], now)
		}
	}
	if len(recs) > 0 && d.first.IsZero() {
		d.first = now
	}
}

// maxGap is the longest time without a delivery of tp within [from, to].
func (d *deliveries) maxGap(tp clients.TopicPartition, from, to time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	var gap time.Duration
	prev := from
	for _, t := range d.at[tp] {
		if t.Before(from) || t.After(to) {
			continue
		}
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return max(gap, to.Sub(prev))
}

// BenchmarkGroupJoin measures, with 60 partitions under steady production and 9
// members, what a 10th member joining costs: the time until it gets its first records,
// and the longest pause in deliveries of the partitions the other members keep (next to
// the same figure before the join). It logs the figures; it asserts nothing about them.
//
//	go test -run '^$' -bench BenchmarkGroupJoin -benchtime 1x ./clients
func BenchmarkGroupJoin(b *testing.B) {
	var first, pause time.Duration
	for range b.N {
		f, p := measureJoin(b)
		first, pause = max(first, f), max(pause, p)
	}
	b.ReportMetric(float64(first.Microseconds())/1000, "max-ms-to-first-records")
	b.ReportMetric(float64(pause.Microseconds())/1000, "max-ms-pause-kept")
}

// measureJoin runs one join; it returns the joiner's time to its first records and the
// longest pause of a kept partition.
func measureJoin(b *testing.B) (time.Duration, time.Duration) {
	n := servertest.Start(b, servertest.Config(b.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const parts, members = 60, 10
	if _, err := n.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "load", Partitions: parts}); err != nil {
		b.Fatal(err)
	}
	brokers := clients.Brokers(n.Server.Addr())
	p, err := clients.NewProducer(brokers, clients.ManualPartitioning(), clients.Linger(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	stopProduce := make(chan struct{})
	produced := make(chan struct{})
	go func() { // one record per partition every 5ms
		defer close(produced)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopProduce:
				return
			case <-tick.C:
			}
			for i := range parts {
				p.Produce(ctx, &clients.Record{Topic: "load", Partition: int32(i), Value: []byte("x")}, nil)
			}
		}
	}()

	type runner struct {
		gc   *clients.GroupConsumer
		d    *deliveries
		done chan struct{}
	}
	stop := make(chan struct{})
	start := func() *runner {
		r := &runner{d: &deliveries{at: map[clients.TopicPartition][]time.Time{}}, done: make(chan struct{})}
		gc, err := clients.NewGroupConsumer("bench", clients.GroupConfig{Topics: []string{"load"}, ResetTo: clients.AtEnd(),
			OnAssigned: func(context.Context, []clients.TopicPartition) {
				r.d.mu.Lock()
				if r.d.assigned.IsZero() {
					r.d.assigned = time.Now()
				}
				r.d.mu.Unlock()
			}},
			brokers, clients.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		r.gc = gc
		go func() {
			defer close(r.done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
				recs, _ := gc.Poll(pctx)
				pcancel()
				r.d.note(recs, time.Now())
			}
		}()
		return r
	}
	waitStable := func(want int) {
		for {
			resp, err := n.Group.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: "bench"})
			if err == nil && resp.GetState() == sluicev1.GroupState_GROUP_STATE_STABLE && len(resp.GetMembers()) == want {
				owned := 0
				for _, m := range resp.GetMembers() {
					for _, tp := range m.GetAssigned() {
						owned += len(tp.GetPartitions())
					}
				}
				if owned == parts {
					return
				}
			}
			select {
			case <-ctx.Done():
				b.Fatalf("group never stable with %d members", want)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	var rs []*runner
	tStart := time.Now()
	for range members - 1 {
		rs = append(rs, start())
	}
	waitStable(members - 1)
	b.Logf("9 members stable after %v", time.Since(tStart))
	time.Sleep(time.Second) // a baseline of steady consumption
	before := map[*runner][]clients.TopicPartition{}
	for _, r := range rs {
		before[r] = r.gc.Assigned()
	}
	t0 := time.Now()
	joiner := start()
	waitStable(members)
	stable := time.Now()
	for joiner.d.first.IsZero() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // deliveries after the rebalance
	end := time.Now()

	var keptGap, baseGap time.Duration
	kept, moved := 0, 0
	for _, r := range rs {
		after := r.gc.Assigned()
		for _, tp := range before[r] {
			if !slices.Contains(after, tp) {
				moved++
				continue
			}
			kept++
			keptGap = max(keptGap, r.d.maxGap(tp, t0, end))
			baseGap = max(baseGap, r.d.maxGap(tp, t0.Add(-end.Sub(t0)), t0))
		}
	}
	joiner.d.mu.Lock()
	firstRecords := joiner.d.first.Sub(t0)
	joiner.d.mu.Unlock()
	b.Logf("%d partitions, %d members: joiner's first records after %v (group stable after %v); %d partitions moved, %d kept; "+
		"longest gap in deliveries of kept partitions %v during the rebalance window (%v before it)",
		parts, members, firstRecords, stable.Sub(t0), moved, kept, keptGap, baseGap)

	b.Logf("joiner assigned after %v", joiner.d.assigned.Sub(t0))
	tClose := time.Now()
	close(stop)
	for _, r := range append(rs, joiner) {
		<-r.done
		_ = r.gc.Close()
	}
	b.Logf("closed after %v", time.Since(tClose))
	close(stopProduce)
	<-produced
	return firstRecords, keptGap
}
