package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
)

// TestRestartAllTime measures a whole-cluster restart: all three nodes get SIGTERM,
// then start again together, and the Go producer (which outlives them) produces to
// every partition of a 6-partition RF=3 topic. It logs, per round, when every
// process reported ready and when every partition had acknowledged a record after
// the restart began, and the median of the latter. It asserts only that the
// produces succeed. It runs with SLUICE_CHAOS=1 or when named
// (-run TestRestartAllTime).
func TestRestartAllTime(t *testing.T) {
	if os.Getenv("SLUICE_CHAOS") == "" && !strings.Contains(flag.Lookup("test.run").Value.String(), "RestartAllTime") {
		t.Skip("measurement: run with -run RestartAllTime or SLUICE_CHAOS=1")
	}
	needBinary(t)
	const (
		topic      = "restart"
		partitions = 6
		rounds     = 5
	)
	c := startCluster(t, clusterOpts{})
	c.createTopic(topic, partitions, nil)
	p, err := clients.NewProducer(clients.Brokers(c.addrs()...), clients.ManualPartitioning(), clients.Linger(0),
		clients.RequestTimeout(callTimeout), clients.RetryBackoff(5*time.Millisecond, 50*time.Millisecond),
		clients.DeliveryTimeout(settleGuard))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produceAll := func(v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), settleGuard)
		defer cancel()
		var recs []*clients.Record
		for part := range int32(partitions) {
			recs = append(recs, &clients.Record{Topic: topic, Partition: part, Value: []byte(v)})
		}
		return p.ProduceSync(ctx, recs...).FirstErr()
	}
	var figures []time.Duration
	for round := range rounds {
		if err := produceAll(fmt.Sprintf("before-%d", round)); err != nil {
			t.Fatalf("round %d: produce before the restart: %v", round, err)
		}
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.stop() }()
		}
		wg.Wait()
		start := time.Now()
		for _, n := range c.nodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.start() }()
		}
		wg.Wait()
		ready := time.Since(start)
		if t.Failed() {
			t.FailNow()
		}
		if err := produceAll(fmt.Sprintf("after-%d", round)); err != nil {
			t.Fatalf("round %d: produce after the restart: %v", round, err)
		}
		d := time.Since(start)
		figures = append(figures, d)
		t.Logf("round %d: every node ready %v after the start, every partition acknowledged a record %v after it",
			round, ready.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	slices.Sort(figures)
	t.Logf("whole-cluster restart (SIGTERM all, start all) to a record acknowledged on each of %d partitions: median %v, min %v, max %v over %d rounds",
		partitions, figures[rounds/2].Round(time.Millisecond), figures[0].Round(time.Millisecond), figures[rounds-1].Round(time.Millisecond), rounds)
}
