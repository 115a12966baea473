package chaos

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// fault is one kind of fault the nemesis injects and then heals.
type fault struct {
	name string
	// inject acts on a partition's leader (leader true) or on one of its followers, and
	// returns what heals it.
	inject func(c *cluster, n *node) (heal func())
	leader bool
}

var (
	killLeader      = fault{name: "SIGKILL leader", leader: true, inject: kill}
	killFollower    = fault{name: "SIGKILL follower", inject: kill}
	pauseLeader     = fault{name: "SIGSTOP leader", leader: true, inject: pause}
	pauseFollower   = fault{name: "SIGSTOP follower", inject: pause}
	isolateLeader   = fault{name: "partition leader away", leader: true, inject: partition}
	isolateFollower = fault{name: "partition follower away", inject: partition}
	killAll         = fault{name: "SIGKILL every node", inject: killEveryNode}
	allFaults       = []fault{killLeader, pauseLeader, isolateLeader, killFollower, pauseFollower, isolateFollower, killAll}
)

// killEveryNode kills all three nodes at once and restarts them together.
func killEveryNode(c *cluster, _ *node) func() {
	for _, n := range c.nodes {
		n.kill()
	}
	return func() {
		var wg sync.WaitGroup
		for _, n := range c.nodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.start() }()
		}
		wg.Wait()
	}
}

func kill(c *cluster, n *node) func() {
	n.kill()
	return func() { n.start() }
}

func pause(c *cluster, n *node) func() {
	n.pause()
	return n.resume
}

func partition(c *cluster, n *node) func() {
	if err := isolate(c, n.id); err != nil {
		c.t.Fatal(err)
	}
	return func() {
		c.t.Logf("%s partition of node %d: %s", c.net, n.id, c.net.stats())
		if err := c.net.heal(); err != nil {
			c.t.Fatal(err)
		}
	}
}

// nemesis injects faults one at a time, each held for a while and then healed,
// waiting after each until the workload acknowledges records again.
type nemesis struct {
	c          *cluster
	w          *workload
	rng        *rand.Rand
	hold, gap  time.Duration // upper bounds; each is drawn in [bound/2, bound)
	log        []string
	progressed int
}

func (ns *nemesis) draw(d time.Duration) time.Duration {
	return d/2 + time.Duration(ns.rng.Int64N(int64(d/2)))
}

// run injects count faults, cycling through kinds in a shuffled order so a short run
// still covers every kind.
func (ns *nemesis) run(kinds []fault, count int) {
	t := ns.c.t
	order := append([]fault(nil), kinds...)
	for i := 0; i < count; i++ {
		if i%len(order) == 0 {
			ns.rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		f := order[i%len(order)]
		part := ns.rng.Int32N(ns.w.partitions)
		leader := ns.c.leader(ns.w.topic, part)
		if leader == 0 {
			leader = 1 + ns.rng.IntN(len(ns.c.nodes))
		}
		target := leader
		if !f.leader {
			target = 1 + (leader+ns.rng.IntN(len(ns.c.nodes)-1))%len(ns.c.nodes)
		}
		n := ns.c.node(target)
		hold := ns.draw(ns.hold)
		before := ns.w.h.acked.Load()
		start := time.Now()
		heal := f.inject(ns.c, n)
		time.Sleep(hold)
		during := ns.w.h.acked.Load() - before
		heal()
		ns.waitProgress(fmt.Sprintf("after %s", f.name))
		entry := fmt.Sprintf("%s: %s of partition %d = node %d for %v (%d acks during the fault); healed after %v",
			start.UTC().Format("15:04:05.000"), f.name, part, target, hold.Round(time.Millisecond), during, time.Since(start).Round(time.Millisecond))
		ns.log = append(ns.log, entry)
		t.Log(entry)
		time.Sleep(ns.draw(ns.gap))
	}
}

// waitProgress waits until every partition has acknowledged a new record (a failure
// guard: a cluster of three healthy nodes must make progress).
func (ns *nemesis) waitProgress(what string) {
	t := ns.c.t
	t.Helper()
	before := ns.w.h.ackedPerPartition()
	deadline := time.Now().Add(settleGuard)
	for time.Now().Before(deadline) {
		now := ns.w.h.ackedPerPartition()
		ok := true
		for p := range ns.w.partitions {
			ok = ok && now[p] > before[p]
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: some partition acknowledged nothing for %v: before %v, now %v", what, settleGuard, before, ns.w.h.ackedPerPartition())
}

func (h *history) ackedPerPartition() map[int32]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int32]int{}
	for _, a := range h.mu.acks {
		out[a.part]++
	}
	return out
}
