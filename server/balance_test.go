package server_test

import (
	"testing"
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// After a node is cut off and comes back, the partitions it prefers to
// lead are led by others; BalanceLeaders hands them back through
// leadership transfer.
func TestBalanceLeadersRestoresPreferredLeaders(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "bal", Partitions: 6, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	for p := range int32(6) {
		produceN(t, c.Nodes[1], "bal", p, 2)
	}
	c.Network.Isolate(1, 2, 3)
	// Every partition gets a leader among nodes 2 and 3.
	for p := range int32(6) {
		waitMeta(t, c.Nodes[1], "bal", p, "led without node 1", func(pm *sluicev1.PartitionMetadata) bool {
			return pm.GetLeader() == 2 || pm.GetLeader() == 3
		})
		produceN(t, c.Nodes[1], "bal", p, 1)
	}
	c.Network.HealAll()
	preferred1 := 0
	for p := range int32(6) {
		if partitionMeta(t, c.Nodes[1], "bal", p).GetReplicas()[0] == 1 {
			preferred1++
		}
	}
	if preferred1 == 0 {
		t.Fatal("node 1 is the preferred leader of no partition")
	}
	deadline := time.Now().Add(60 * time.Second)
	transfers := int32(0)
	for {
		r, err := c.Nodes[2].Cluster.BalanceLeaders(ctx, &sluicev1.BalanceLeadersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		transfers += r.GetTransfers()
		balanced := true
		for p := range int32(6) {
			pm := partitionMeta(t, c.Nodes[1], "bal", p)
			if pm.GetLeader() != pm.GetReplicas()[0] {
				balanced = false
			}
		}
		if balanced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("leaders never moved back to the preferred replicas")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if transfers == 0 {
		t.Fatal("leadership came back without a transfer")
	}
	for p := range int32(6) {
		produceN(t, c.Nodes[0], "bal", p, 1)
	}
}
