package chaos

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

type chaosRun struct {
	partitions int32
	faults     int
	hold, gap  time.Duration
	iptables   bool
	workload   workloadOpts
	// strict: a produce the idempotent producer gives up on is a violation. Its
	// delivery timeout (4 minutes) outlasts every fault, so under these faults none
	// should fail.
	strict bool
}

// TestChaosShort: a handful of faults, one of each kind, in about a minute. Partitions
// use the relays (no root needed).
func TestChaosShort(t *testing.T) {
	if os.Getenv("SLUICE_CHAOS") != "" {
		t.Skip("SLUICE_CHAOS is set: TestChaosLong runs instead")
	}
	runChaos(t, chaosRun{partitions: 4, faults: len(allFaults), hold: 4 * time.Second, gap: 2 * time.Second,
		workload: workloadOpts{producers: 3, consumers: 2, pause: 4 * time.Millisecond, valueBytes: 64}})
}

// TestIPTablesPartitionShort partitions a leader and a follower away with iptables
// DROP rules between 127.0.0.x addresses. It needs root and iptables
// (scripts/chaos-setup.sh installs it) and skips without them; TestChaosShort covers
// partitions with the relays everywhere.
func TestIPTablesPartitionShort(t *testing.T) {
	if os.Getenv("SLUICE_CHAOS") != "" {
		t.Skip("SLUICE_CHAOS is set: TestChaosLong runs instead")
	}
	if why := iptablesUsable(); why != "" {
		t.Skip("iptables partitions need root and iptables: " + why)
	}
	runChaosWith(t, []fault{isolateLeader, isolateFollower}, chaosRun{partitions: 2, faults: 2, hold: 4 * time.Second, gap: time.Second, iptables: true,
		workload: workloadOpts{producers: 2, consumers: 1, pause: 4 * time.Millisecond, valueBytes: 64}})
}

// TestChaosLong (SLUICE_CHAOS=1): many faults over minutes; partitions with iptables
// when the test runs as root with iptables installed (scripts/chaos-setup.sh), else
// with the relays. SLUICE_CHAOS_FAULTS overrides the number of faults.
func TestChaosLong(t *testing.T) {
	if os.Getenv("SLUICE_CHAOS") == "" {
		t.Skip("long chaos run: set SLUICE_CHAOS=1 (make chaos)")
	}
	faults := 36
	if v := os.Getenv("SLUICE_CHAOS_FAULTS"); v != "" {
		if n, err := parseInt(v); err == nil && n > 0 {
			faults = n
		}
	}
	useIPT := iptablesUsable() == ""
	if !useIPT {
		t.Logf("partitions hold the relays: %s", iptablesUsable())
	}
	runChaos(t, chaosRun{partitions: 6, faults: faults, hold: 8 * time.Second, gap: 4 * time.Second, iptables: useIPT, strict: true,
		workload: workloadOpts{producers: 4, consumers: 2, pause: 3 * time.Millisecond, valueBytes: 256}})
}

// TestKillEveryNodeLong (SLUICE_CHAOS=1) kills all three nodes at once, again and
// again, under the idempotent producer: no record may fail.
func TestKillEveryNodeLong(t *testing.T) {
	if os.Getenv("SLUICE_CHAOS") == "" {
		t.Skip("long chaos run: set SLUICE_CHAOS=1 (make chaos)")
	}
	runChaosWith(t, []fault{killAll}, chaosRun{partitions: 6, faults: 8, hold: 5 * time.Second, gap: 3 * time.Second, strict: true,
		workload: workloadOpts{producers: 4, consumers: 1, pause: 3 * time.Millisecond, valueBytes: 256}})
}

func runChaos(t *testing.T, o chaosRun) { runChaosWith(t, allFaults, o) }

func runChaosWith(t *testing.T, kinds []fault, o chaosRun) {
	needBinary(t)
	const topic = "chaos"
	c := startCluster(t, clusterOpts{iptables: o.iptables})
	t.Logf("cluster up: nodes %v, partitions by %s, logs in %s", c.addrs(), c.net, c.dir)
	c.createTopic(topic, o.partitions, nil)
	w := startWorkload(t, c, topic, o.partitions, o.workload)
	ns := &nemesis{c: c, w: w, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), hold: o.hold, gap: o.gap}
	ns.waitProgress("before the first fault")
	ns.run(kinds, o.faults)

	w.stopProducing()
	c.healAll()
	h := w.h.snapshot()
	need := map[int32]int64{}
	for _, a := range h.acks {
		need[a.part] = max(need[a.part], a.off+1)
	}
	replicas, err := settle(c, topic, o.partitions, need)
	if err != nil {
		t.Error(err)
	}
	// Consumers catch up with the settled log before the checker reads what they saw.
	waitConsumed(t, w, replicas)
	w.stopConsuming()
	h = w.h.snapshot()
	r := check(h, replicas)
	total := int64(0)
	for _, rl := range replicas[1] {
		total += rl.hw - rl.start
	}
	t.Logf("history: %d acknowledged, %d failed (outcome unknown), %d consumed; %d records in the final log; %d faults",
		len(h.acks), len(h.failed), len(h.seen), total, len(ns.log))
	for v, err := range h.failed {
		if o.strict {
			r.add("idempotent producer gave up", "%s (partition %d) failed at %s: %v", v, h.sent[v], h.failAt[v].UTC().Format("15:04:05.000"), err)
		} else {
			t.Logf("failed produce %s (partition %d) at %s: %v", v, h.sent[v], h.failAt[v].UTC().Format("15:04:05.000"), err)
		}
	}
	if !r.ok() {
		t.Errorf("checker found violations:\n%s\nfaults:\n%v", r, ns.log)
	}
}

// waitConsumed waits (a failure guard only logs) until the consumers have seen every
// offset of the settled logs, so what they saw covers the whole run.
func waitConsumed(t *testing.T, w *workload, replicas map[int]map[int32]*replicaLog) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		h := w.h.snapshot()
		maxSeen := map[[2]int64]int64{}
		for _, s := range h.seen {
			k := [2]int64{int64(s.consumer), int64(s.part)}
			maxSeen[k] = max(maxSeen[k], s.off+1)
		}
		done := true
		for ci := range w.consumers {
			for p, rl := range replicas[1] {
				if rl != nil && maxSeen[[2]int64{int64(ci), int64(p)}] < rl.hw {
					done = false
				}
			}
		}
		if done {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Log("consumers did not reach the end of every partition in a minute; checking what they saw")
}

func parseInt(s string) (int, error) {
	var n int
	_, err := fmtSscan(s, &n)
	return n, err
}
