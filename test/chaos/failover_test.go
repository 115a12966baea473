package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
)

// TestFailoverTime measures, ten times, the time from SIGKILL of a partition's leader
// to the first record the Go producer gets acknowledged (acks=all) after it, and logs
// the figures and their median. It asserts only that the produce succeeds on a new
// leader. It runs with SLUICE_CHAOS=1 or when asked for by name (-run TestFailoverTime).
func TestFailoverTime(t *testing.T) {
	measureFailover(t, "SIGKILL", func(n *node) func() { n.kill(); return n.start })
}

// TestPauseFailoverTime is TestFailoverTime with SIGSTOP instead of SIGKILL: the
// leader's sockets stay open and nothing answers on them. The leader is resumed once
// the produce after it succeeded, or after 20 seconds if it does not; a produce that
// succeeds only once the old leader is back fails the test.
func TestPauseFailoverTime(t *testing.T) {
	measureFailover(t, "SIGSTOP", func(n *node) func() {
		n.pause()
		timer := time.AfterFunc(pauseGuard, n.resume)
		return func() { timer.Stop(); n.resume() }
	})
}

// pauseGuard bounds a SIGSTOP in TestPauseFailoverTime.
const pauseGuard = 20 * time.Second

func measureFailover(t *testing.T, what string, fault func(*node) (heal func())) {
	if os.Getenv("SLUICE_CHAOS") == "" && !strings.Contains(flag.Lookup("test.run").Value.String(), "FailoverTime") {
		t.Skip("measurement: run with -run FailoverTime or SLUICE_CHAOS=1")
	}
	needBinary(t)
	const (
		topic  = "failover"
		rounds = 10
	)
	c := startCluster(t, clusterOpts{})
	c.createTopic(topic, 1, nil)
	p, err := clients.NewProducer(clients.Brokers(c.addrs()...), clients.ManualPartitioning(), clients.Linger(0),
		clients.RequestTimeout(callTimeout), clients.RetryBackoff(5*time.Millisecond, 50*time.Millisecond),
		clients.DeliveryTimeout(settleGuard))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(v string) (*clients.Record, error) {
		ctx, cancel := context.WithTimeout(context.Background(), settleGuard)
		defer cancel()
		return p.ProduceSync(ctx, &clients.Record{Topic: topic, Partition: 0, Key: []byte(v), Value: []byte(v)}).First()
	}
	var figures []time.Duration
	for round := range rounds {
		// A settled partition: every node up, a leader that acknowledges.
		c.waitLeaders(topic, 1)
		if _, err := produce(fmt.Sprintf("warm-%d", round)); err != nil {
			t.Fatalf("round %d: produce before the kill: %v", round, err)
		}
		old := c.leader(topic, 0)
		if old == 0 {
			t.Fatalf("round %d: no leader", round)
		}
		victim := c.node(old)
		start := time.Now()
		heal := fault(victim)
		r, err := produce(fmt.Sprintf("after-%d", round))
		d := time.Since(start)
		stillPaused := victim.paused()
		if err != nil {
			t.Fatalf("round %d: produce after killing leader %d: %v", round, old, err)
		}
		now := c.leader(topic, 0)
		figures = append(figures, d)
		t.Logf("round %d: %s of leader node %d; first acknowledged produce %v later (offset %d, leader now node %d)", round, what, old, d.Round(time.Millisecond), r.Offset, now)
		if what == "SIGSTOP" && !stillPaused {
			t.Errorf("round %d: the produce succeeded only after node %d was resumed, %v after it was stopped", round, old, d.Round(time.Millisecond))
		}
		heal()
	}
	sorted := slices.Clone(figures)
	slices.Sort(sorted)
	median := (sorted[rounds/2-1] + sorted[rounds/2]) / 2
	t.Logf("%s of the leader to first acknowledged produce: median %v, min %v, max %v over %d rounds (tick 100ms, default election timeout)",
		what, median.Round(time.Millisecond), sorted[0].Round(time.Millisecond), sorted[rounds-1].Round(time.Millisecond), rounds)
}
