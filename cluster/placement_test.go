package cluster

import (
	"slices"
	"testing"
)

func TestPlaceSpreadsReplicasAndLeaders(t *testing.T) {
	nodes := []NodeInfo{{ID: 3}, {ID: 1}, {ID: 2}, {ID: 4}}
	for seed := range uint64(8) {
		pl, err := Place(nodes, 0, 12, 3, seed)
		if err != nil {
			t.Fatal(err)
		}
		leaders := map[uint64]int{}
		replicas := map[uint64]int{}
		for _, r := range pl {
			if len(r) != 3 {
				t.Fatalf("replicas %v", r)
			}
			for i, id := range r {
				if slices.Contains(r[:i], id) {
					t.Fatalf("repeated node in %v", r)
				}
				replicas[id]++
			}
			leaders[r[0]]++
		}
		for _, n := range nodes {
			if leaders[n.ID] != 3 || replicas[n.ID] != 9 {
				t.Fatalf("seed %d: uneven: leaders %v replicas %v", seed, leaders, replicas)
			}
		}
	}
}

func TestPlaceAcrossRacks(t *testing.T) {
	nodes := []NodeInfo{{ID: 1, Rack: "a"}, {ID: 2, Rack: "a"}, {ID: 3, Rack: "b"}, {ID: 4, Rack: "b"}}
	rack := map[uint64]string{1: "a", 2: "a", 3: "b", 4: "b"}
	pl, err := Place(nodes, 0, 8, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pl {
		if rack[r[0]] == rack[r[1]] {
			t.Errorf("both replicas in rack %s: %v", rack[r[0]], r)
		}
	}
}

func TestPlaceTooFewNodes(t *testing.T) {
	if _, err := Place([]NodeInfo{{ID: 1}}, 0, 1, 2, 0); err == nil {
		t.Fatal("placed 2 replicas on 1 node")
	}
}
