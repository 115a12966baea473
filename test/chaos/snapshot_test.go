package chaos

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRestartCatchesUpThroughSnapshot kills a follower, keeps producing until the
// leaders' retention has moved every partition's log start past the end of the killed
// replica's log, restarts it, and checks the history: the replica can only catch up by
// installing a snapshot, and must then hold the same log as the others.
func TestRestartCatchesUpThroughSnapshot(t *testing.T) {
	needBinary(t)
	const (
		topic      = "snap"
		partitions = 2
	)
	c := startCluster(t, clusterOpts{extra: []string{"--retention-check-interval", "500ms"}})
	c.createTopic(topic, partitions, map[string]string{"segment.bytes": "16384", "retention.bytes": "32768"})
	w := startWorkload(t, c, topic, partitions, workloadOpts{producers: 2, consumers: 1, pause: 2 * time.Millisecond, valueBytes: 1024})
	ns := &nemesis{c: c, w: w}
	ns.waitProgress("before the kill")

	// The follower: a node leading no partition if there is one.
	victim := c.node(3)
	leaders := map[int]bool{}
	for p := range int32(partitions) {
		leaders[c.leader(topic, p)] = true
	}
	for _, n := range c.nodes {
		if !leaders[n.id] {
			victim = n
			break
		}
	}
	ends := map[int32]int64{}
	for p := range int32(partitions) {
		rl, err := readLocal(context.Background(), victim, topic, p, false)
		if err != nil {
			t.Fatal(err)
		}
		ends[p] = rl.hw
	}
	victim.kill()
	t.Logf("killed node %d with its replicas ending at %v", victim.id, ends)

	// Wait until retention on the others has passed the killed replica's end.
	deadline := time.Now().Add(settleGuard)
	for {
		passed := true
		starts := map[int32]int64{}
		for _, n := range c.upNodes() {
			for p := range int32(partitions) {
				rl, err := readLocal(context.Background(), n, topic, p, false)
				if err != nil || rl.start <= ends[p] {
					passed = false
				}
				if err == nil {
					starts[p] = rl.start
				}
			}
		}
		if passed {
			t.Logf("log starts on the running nodes: %v", starts)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not move the log start past %v in %v (starts now %v)", ends, settleGuard, starts)
		}
		time.Sleep(250 * time.Millisecond)
	}
	victim.start()
	ns.waitProgress("after the restart")
	w.stopProducing()
	h := w.h.snapshot()
	need := map[int32]int64{}
	for _, a := range h.acks {
		need[a.part] = max(need[a.part], a.off+1)
	}
	replicas, err := settle(c, topic, partitions, need)
	if err != nil {
		t.Error(err)
	}
	w.stopConsuming()
	h = w.h.snapshot()
	if r := check(h, replicas); !r.ok() {
		t.Errorf("checker found violations:\n%s", r)
	}
	for p := range int32(partitions) {
		if rl := replicas[victim.id][p]; rl != nil && rl.start <= ends[p] {
			t.Errorf("partition %d: restarted node %d starts at %d, at or below where its log ended (%d): it did not catch up through a snapshot", p, victim.id, rl.start, ends[p])
		}
	}
	t.Logf("history: %d acknowledged, %d failed, %d consumed; node %d snapshot metrics: %s",
		len(h.acks), len(h.failed), len(h.seen), victim.id, snapshotMetrics(victim))
}

// snapshotMetrics returns the node's snapshot counters, for the log.
func snapshotMetrics(n *node) string {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.http+"/metrics", nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "sluice_replication_snapshots_total") {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, "; ")
}
