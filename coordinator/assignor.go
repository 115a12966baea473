package coordinator

import (
	"maps"
	"slices"
)

// assignInput is what an assignor sees: the members (sorted by id) with
// the topics each subscribes to, the partition count of every subscribed
// topic, and the current target assignment (for stickiness).
type assignInput struct {
	members    []string
	subscribed map[string]map[string]bool // member -> topics
	partitions map[string]int32           // topic -> partition count
	current    map[string]map[TP]bool     // member -> target before the change
}

// assign computes a target assignment: every partition of a subscribed
// topic goes to exactly one member subscribed to it. Deterministic.
func assign(a Assignor, in assignInput) map[string]map[TP]bool {
	out := make(map[string]map[TP]bool, len(in.members))
	for _, m := range in.members {
		out[m] = map[TP]bool{}
	}
	if len(in.members) == 0 {
		return out
	}
	switch a {
	case AssignorRange:
		assignRange(in, out)
	case AssignorRoundRobin:
		assignRoundRobin(in, out)
	default:
		assignSticky(in, out)
	}
	return out
}

// subscribers lists, per topic, the members subscribed to it (sorted).
func (in assignInput) subscribers(topic string) []string {
	var out []string
	for _, m := range in.members {
		if in.subscribed[m][topic] {
			out = append(out, m)
		}
	}
	return out
}

func (in assignInput) topics() []string {
	return slices.Sorted(maps.Keys(in.partitions))
}

// assignRange splits each topic's partitions into contiguous ranges, one
// per subscribed member; the first members get one more when it does not
// divide evenly.
func assignRange(in assignInput, out map[string]map[TP]bool) {
	for _, t := range in.topics() {
		subs := in.subscribers(t)
		if len(subs) == 0 {
			continue
		}
		n := int(in.partitions[t])
		per, extra := n/len(subs), n%len(subs)
		p := 0
		for i, m := range subs {
			k := per
			if i < extra {
				k++
			}
			for j := 0; j < k; j++ {
				out[m][TP{t, int32(p)}] = true
				p++
			}
		}
	}
}

// assignRoundRobin deals all partitions, sorted by topic and partition, to
// the members in turn, skipping members not subscribed to the topic.
func assignRoundRobin(in assignInput, out map[string]map[TP]bool) {
	next := 0
	for _, t := range in.topics() {
		for p := int32(0); p < in.partitions[t]; p++ {
			for range in.members {
				m := in.members[next%len(in.members)]
				next++
				if in.subscribed[m][t] {
					out[m][TP{t, p}] = true
					break
				}
			}
		}
	}
}

// assignSticky balances partition counts across members while moving as
// few partitions as possible: partitions stay with their current owner
// while it is still subscribed and under its fair share; the rest go to
// the least loaded eligible member; then single moves from the most to the
// least loaded eligible member even the counts out.
func assignSticky(in assignInput, out map[string]map[TP]bool) {
	total := 0
	for _, t := range in.topics() {
		if len(in.subscribers(t)) > 0 {
			total += int(in.partitions[t])
		}
	}
	quota := (total + len(in.members) - 1) / len(in.members)
	taken := map[TP]bool{}
	// Keep current partitions up to the quota.
	for _, m := range in.members {
		for _, tp := range sortTPs(slices.Collect(maps.Keys(in.current[m]))) {
			if len(out[m]) >= quota || !in.subscribed[m][tp.Topic] || tp.Partition >= in.partitions[tp.Topic] || taken[tp] {
				continue
			}
			out[m][tp] = true
			taken[tp] = true
		}
	}
	// Hand out the rest to the least loaded eligible member.
	for _, t := range in.topics() {
		subs := in.subscribers(t)
		for p := int32(0); p < in.partitions[t]; p++ {
			tp := TP{t, p}
			if taken[tp] || len(subs) == 0 {
				continue
			}
			best := subs[0]
			for _, m := range subs[1:] {
				if len(out[m]) < len(out[best]) {
					best = m
				}
			}
			out[best][tp] = true
			taken[tp] = true
		}
	}
	// Even out: move one partition at a time from a member with at least
	// two more than an eligible member.
	for moved := true; moved; {
		moved = false
		for _, from := range in.members {
			for _, tp := range sortTPs(slices.Collect(maps.Keys(out[from]))) {
				for _, to := range in.members {
					if to != from && in.subscribed[to][tp.Topic] && len(out[from]) > len(out[to])+1 {
						delete(out[from], tp)
						out[to][tp] = true
						moved = true
						break
					}
				}
			}
		}
	}
}
