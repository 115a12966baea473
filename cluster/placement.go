package cluster

import (
	"fmt"
	"slices"
)

// Place chooses replicas for count new partitions, numbered from first,
// among nodes (any order). Like Kafka's assignment without a rack, the
// leader (first replica) of consecutive partitions walks round the nodes
// from a start that rotates with seed, and followers follow at a shift,
// so replicas and preferred leaders spread evenly. With racks, the node
// list alternates racks first, so a partition's replicas land on as many
// racks as possible.
func Place(nodes []NodeInfo, first, count, rf int32, seed uint64) ([][]uint64, error) {
	if rf < 1 {
		return nil, &InvalidError{Field: "replication_factor", Reason: "must be at least 1"}
	}
	if int(rf) > len(nodes) {
		return nil, &InvalidError{Field: "replication_factor",
			Reason: fmt.Sprintf("%d replicas need %d nodes; the cluster has %d", rf, rf, len(nodes))}
	}
	ordered := rackAlternated(nodes)
	n := len(ordered)
	numRacks := countRacks(ordered)
	start := int(seed % uint64(n))
	shiftBase := int((seed / uint64(n)) % uint64(max(n-1, 1)))
	out := make([][]uint64, 0, count)
	for i := int32(0); i < count; i++ {
		p := int(first + i)
		leader := (start + p) % n
		shift := 1 + (shiftBase+p/n)%max(n-1, 1)
		r := make([]uint64, 0, rf)
		r = append(r, ordered[leader].ID)
		racks := map[string]bool{ordered[leader].Rack: true}
		for j := 1; j < int(rf); j++ {
			// Kafka's replicaIndex: followers at a shift that changes each
			// time the leaders wrap round, never landing on the leader;
			// skip ahead to a rack not used yet while there is one.
			idx := (leader + 1 + (shift+j-1)%(n-1)) % n
			pick := -1
			for k := 0; k < n; k++ {
				c := ordered[(idx+k)%n]
				if slices.Contains(r, c.ID) {
					continue
				}
				if pick < 0 {
					pick = (idx + k) % n
				}
				if len(racks) < numRacks && racks[c.Rack] {
					continue
				}
				pick = (idx + k) % n
				break
			}
			racks[ordered[pick].Rack] = true
			r = append(r, ordered[pick].ID)
		}
		out = append(out, r)
	}
	return out, nil
}

// rackAlternated orders nodes by id, interleaving racks: r1n1, r2n1, r1n2,
// r2n2, ... Without racks it is the nodes sorted by id.
func rackAlternated(nodes []NodeInfo) []NodeInfo {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b NodeInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	byRack := map[string][]NodeInfo{}
	var racks []string
	for _, n := range sorted {
		if _, ok := byRack[n.Rack]; !ok {
			racks = append(racks, n.Rack)
		}
		byRack[n.Rack] = append(byRack[n.Rack], n)
	}
	if len(racks) <= 1 {
		return sorted
	}
	slices.Sort(racks)
	out := make([]NodeInfo, 0, len(sorted))
	for i := 0; len(out) < len(sorted); i++ {
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out
}

func countRacks(nodes []NodeInfo) int {
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n.Rack] = true
	}
	return len(seen)
}
