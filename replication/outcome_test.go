package replication

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestIsolatedLeaderReportsOutcome(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	old, p := c.leader(1)
	c.net.Isolate(old.NodeID(), 1, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := p.Produce(ctx, testBatch(0), AcksAll)
	var nle *NotLeaderError
	switch {
	case err == nil:
		t.Fatal("isolated leader acknowledged a write")
	case errors.Is(err, ErrUnknownOutcome), errors.As(err, &nle):
	default:
		t.Fatalf("isolated leader: %v, want unknown outcome or not leader", err)
	}
	// Once it stepped down it refuses outright.
	deadline := time.Now().Add(30 * time.Second)
	for p.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("isolated leader never stepped down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := p.Produce(testCtx(t), testBatch(1), AcksAll); !errors.As(err, &nle) {
		t.Fatalf("after step-down: %v", err)
	}
}

func TestAcksLeaderOnThreeNodes(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(t)
	for i := 0; i < 5; i++ {
		res, err := p.Produce(ctx, testBatch(i), AcksLeader)
		if err != nil || res.BaseOffset != uint64(i) {
			t.Fatalf("acks=1 produce %d: %v at %d", i, err, res.BaseOffset)
		}
	}
	waitHW(t, p, 5)
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newTestClusterWith(t, 1, false, func(cfg *HostConfig) { cfg.Registerer = reg })
	c.open(1)
	_, p := c.leader(1)
	if _, err := p.Produce(testCtx(t), testBatch(0), AcksAll); err != nil {
		t.Fatal(err)
	}
	// A host restarted in the same process registers on the same registry.
	c.stop(1)
	c.start(1)
	c.open(1)
	c.leader(1)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"sluice_replication_partitions", "sluice_replication_leader_partitions",
		"sluice_replication_leadership_changes_total", "sluice_replication_proposal_duration_seconds",
		"sluice_replication_applied_entries_total", "sluice_replication_leaderless_partitions",
		"sluice_replication_under_replicated_partitions"} {
		if !strings.Contains(got, want) {
			t.Errorf("metric %s missing from %s", want, got)
		}
	}
}

func TestStatusShowsReplicaLag(t *testing.T) {
	c := newTestCluster(t, 3, false)
	c.open(1)
	lh, p := c.leader(1)
	var f uint64 = 1
	if lh.NodeID() == 1 {
		f = 2
	}
	c.net.Isolate(f, 1, 2, 3)
	ctx := testCtx(t)
	for i := 0; i < 10; i++ {
		if _, err := p.Produce(ctx, testBatch(i), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Status()
	if !st.IsLeader || len(st.Replicas) != 3 || len(st.Voters) != 3 || !st.UnderReplicated() {
		t.Fatalf("leader status %+v", st)
	}
	for _, r := range st.Replicas {
		if r.NodeID == f && r.Lag == 0 {
			t.Fatalf("isolated replica shows no lag: %+v", st)
		}
	}
	c.net.HealAll()
	fp, _ := c.host(f).Partition(1)
	waitHW(t, fp, p.HighWatermark())
}

func TestFollowerAppendLatencyObserved(t *testing.T) {
	var mu sync.Mutex
	regs := map[uint64]*prometheus.Registry{}
	c := newTestClusterWith(t, 3, false, func(cfg *HostConfig) {
		r := prometheus.NewRegistry()
		mu.Lock()
		regs[cfg.NodeID] = r
		mu.Unlock()
		cfg.Registerer = r
	})
	c.open(1)
	lh, p := c.leader(1)
	for i := 0; i < 5; i++ {
		if _, err := p.Produce(testCtx(t), testBatch(i), AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	// acks=all: a follower acknowledged every batch before it was answered,
	// and observed its append latency before sending the acknowledgement.
	var followers uint64
	mu.Lock()
	defer mu.Unlock()
	for id, r := range regs {
		mfs, err := r.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "sluice_replication_follower_append_duration_seconds" {
				continue
			}
			if id != lh.NodeID() {
				followers += mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
	}
	if followers == 0 {
		t.Fatal("no follower observed its append latency")
	}
}
