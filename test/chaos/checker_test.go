package chaos

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// replicaLog is one node's answer for one partition after the cluster settled.
type replicaLog struct {
	start, hw int64
	vals      map[int64]string // offset -> value (the producer's key, "w<i>-<seq>")
}

// snapshotOf is an immutable copy of a history for the checker.
type historySnapshot struct {
	acks   []ack
	failed map[string]error
	failAt map[string]time.Time
	sent   map[string]int32
	seen   []seen
}

func (h *history) snapshot() historySnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := historySnapshot{acks: append([]ack(nil), h.mu.acks...), seen: append([]seen(nil), h.mu.seen...),
		failed: map[string]error{}, failAt: map[string]time.Time{}, sent: map[string]int32{}}
	for k, v := range h.mu.failed {
		s.failed[k] = v
		s.failAt[k] = h.mu.failAt[k]
	}
	for k, v := range h.mu.sent {
		s.sent[k] = v
	}
	return s
}

// report collects violations, keeping a bounded number of examples per kind.
type report struct {
	counts   map[string]int
	examples map[string][]string
}

func (r *report) add(kind, format string, args ...any) {
	if r.counts == nil {
		r.counts, r.examples = map[string]int{}, map[string][]string{}
	}
	r.counts[kind]++
	if len(r.examples[kind]) < 10 {
		r.examples[kind] = append(r.examples[kind], fmt.Sprintf(format, args...))
	}
}

func (r *report) ok() bool { return len(r.counts) == 0 }

func (r *report) String() string {
	var b strings.Builder
	kinds := make([]string, 0, len(r.counts))
	for k := range r.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "%s: %d\n", k, r.counts[k])
		for _, e := range r.examples[k] {
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	return b.String()
}

// parseVal splits "w<i>-<seq>" into producer and sequence.
func parseVal(v string) (string, int, bool) {
	w, s, ok := strings.Cut(v, "-")
	if !ok {
		return "", 0, false
	}
	n, err := strconv.Atoi(s)
	return w, n, err == nil
}

// check verifies a history against the logs read from every replica once the cluster
// settled (replicas[node][partition]).
//
//   - every replica of a partition answers the same log: same high watermark, and the
//     same value at every offset both hold (below a replica's start offset retention
//     removed the records; that is not a loss);
//   - every log is contiguous from its start offset to its high watermark;
//   - every acknowledged record is at its acknowledged offset on every replica (unless
//     retention removed it), and no offset was acknowledged for two values;
//   - no value appears twice, in one partition or across partitions, and none appears
//     that was never sent or in a partition it was not sent to;
//   - in each partition the records of one producer are in the order produced;
//   - every record a consumer saw is, at the offset it saw it, in the final log (unless
//     retention removed it): nothing seen is later gone or changed.
func check(h historySnapshot, replicas map[int]map[int32]*replicaLog) *report {
	r := &report{}
	nodes := make([]int, 0, len(replicas))
	for n := range replicas {
		nodes = append(nodes, n)
	}
	sort.Ints(nodes)
	parts := map[int32]bool{}
	for _, n := range nodes {
		for p := range replicas[n] {
			parts[p] = true
		}
	}
	// merged[p][off] is the value every replica agrees on.
	merged := map[int32]map[int64]string{}
	minStart := map[int32]int64{}
	for p := range parts {
		merged[p] = map[int64]string{}
		minStart[p] = -1
		var hw0 int64 = -1
		for _, n := range nodes {
			rl := replicas[n][p]
			if rl == nil {
				r.add("replica missing", "partition %d: node %d gave no answer", p, n)
				continue
			}
			if hw0 < 0 {
				hw0 = rl.hw
			} else if rl.hw != hw0 {
				r.add("replicas disagree on the high watermark", "partition %d: node %d has %d, node %d has %d", p, nodes[0], hw0, n, rl.hw)
			}
			if minStart[p] < 0 || rl.start < minStart[p] {
				minStart[p] = rl.start
			}
			for off := rl.start; off < rl.hw; off++ {
				v, ok := rl.vals[off]
				if !ok {
					r.add("hole in a log", "partition %d node %d: no record at offset %d (start %d, hw %d)", p, n, off, rl.start, rl.hw)
					continue
				}
				if prev, ok := merged[p][off]; ok && prev != v {
					r.add("replicas disagree on a record", "partition %d offset %d: %q on one replica, %q on node %d", p, off, prev, v, n)
					continue
				}
				merged[p][off] = v
			}
		}
	}
	// Where each value is.
	type place struct {
		part int32
		off  int64
	}
	where := map[string]place{}
	for p, offs := range merged {
		for off, v := range offs {
			if prev, ok := where[v]; ok {
				r.add("duplicate", "%q at partition %d offset %d and partition %d offset %d", v, prev.part, prev.off, p, off)
				continue
			}
			where[v] = place{p, off}
			sp, ok := h.sent[v]
			switch {
			case !ok:
				r.add("record never sent", "partition %d offset %d holds %q", p, off, v)
			case sp != p:
				r.add("record in the wrong partition", "%q sent to partition %d, found in %d at %d", v, sp, p, off)
			}
		}
	}
	// Acknowledged records.
	ackAt := map[place]string{}
	for _, a := range h.acks {
		pl := place{a.part, a.off}
		if prev, ok := ackAt[pl]; ok && prev != a.val {
			r.add("offset acknowledged twice", "partition %d offset %d acknowledged for %q and %q", a.part, a.off, prev, a.val)
		}
		ackAt[pl] = a.val
		if sp, ok := h.sent[a.val]; ok && sp != a.part {
			r.add("acknowledged in the wrong partition", "%q sent to %d, acknowledged in %d", a.val, sp, a.part)
		}
		for _, n := range nodes {
			rl := replicas[n][a.part]
			if rl == nil || a.off < rl.start {
				continue // removed by retention
			}
			got, ok := rl.vals[a.off]
			switch {
			case !ok:
				r.add("acknowledged record lost", "%q acknowledged at partition %d offset %d: node %d has no record there (start %d, hw %d)", a.val, a.part, a.off, n, rl.start, rl.hw)
			case got != a.val:
				r.add("acknowledged record changed", "%q acknowledged at partition %d offset %d: node %d has %q there", a.val, a.part, a.off, n, got)
			}
		}
	}
	// Order per producer per partition.
	for p, offs := range merged {
		sorted := make([]int64, 0, len(offs))
		for off := range offs {
			sorted = append(sorted, off)
		}
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		last := map[string]struct {
			seq int
			off int64
		}{}
		for _, off := range sorted {
			w, seq, ok := parseVal(offs[off])
			if !ok {
				continue
			}
			if prev, ok := last[w]; ok && seq < prev.seq {
				r.add("out of order", "partition %d: producer %s seq %d at offset %d after seq %d at offset %d", p, w, seq, off, prev.seq, prev.off)
			}
			last[w] = struct {
				seq int
				off int64
			}{seq, off}
		}
	}
	// What consumers saw.
	for _, s := range h.seen {
		if s.off < minStart[s.part] {
			continue
		}
		got, ok := merged[s.part][s.off]
		switch {
		case !ok:
			r.add("consumed record gone", "consumer %d saw %q at partition %d offset %d at %s; it is not in the final log", s.consumer, s.val, s.part, s.off, s.at.UTC().Format("15:04:05.000"))
		case got != s.val:
			r.add("consumed record changed", "consumer %d saw %q at partition %d offset %d at %s; the final log has %q", s.consumer, s.val, s.part, s.off, s.at.UTC().Format("15:04:05.000"), got)
		}
	}
	return r
}
