package server_test

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// partitionMeta returns a partition's metadata as node n sees it.
func partitionMeta(t *testing.T, n *servertest.Node, topic string, p int32) *sluicev1.PartitionMetadata {
	t.Helper()
	md, err := n.Cluster.GetMetadata(ctxT(t), &sluicev1.GetMetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	return md.GetTopics()[0].GetPartitions()[p]
}

// waitMeta waits until cond holds for a partition's metadata on n.
func waitMeta(t *testing.T, n *servertest.Node, topic string, p int32, what string, cond func(*sluicev1.PartitionMetadata) bool) *sluicev1.PartitionMetadata {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		pm := partitionMeta(t, n, topic, p)
		if cond(pm) {
			return pm
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %s-%d: %s: still %v", topic, p, what, pm)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func produceN(t *testing.T, n *servertest.Node, topic string, p int32, count int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < count; {
		_, err := n.Producer.Produce(ctxT(t), &sluicev1.ProduceRequest{Topic: topic, Partition: proto.Int32(p),
			Batch: &sluicev1.RecordBatch{Records: records(1, "m")}})
		switch {
		case err == nil:
			i++
		case status.Code(err) == codes.Unavailable && time.Now().Before(deadline):
			time.Sleep(20 * time.Millisecond) // retriable: a replica is being opened or elected
		case status.Code(err) == codes.NotFound && i == 0 && time.Now().Before(deadline):
			// A topic just created on another node reaches this node's metadata
			// a moment later.
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatalf("produce to %s-%d: %v", topic, p, err)
		}
	}
}

// A partition reassigned by hand moves through Raft membership changes
// (learner, promotion, removal): the new node holds every record, the
// removed one lets its replica go, and produce keeps working. Then a node
// is decommissioned: all its replicas move away first.
func TestReassignPartitionAndDecommissionNode(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	c.Join(t, 4)
	waitNodes(t, c.Nodes[0], 4)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "mv", Partitions: 4, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	for p := range int32(4) {
		produceN(t, c.Nodes[0], "mv", p, 5)
	}
	pm := partitionMeta(t, c.Nodes[0], "mv", 0)
	var old, spare []int32
	old = pm.GetReplicas()
	for id := int32(1); id <= 4; id++ {
		if !slices.Contains(old, id) {
			spare = append(spare, id)
		}
	}
	// Replace both replicas, through a node that is not the controller.
	target := []int32{spare[0], spare[1]}
	if _, err := c.Nodes[3].Cluster.ReassignPartition(ctx, &sluicev1.ReassignPartitionRequest{Topic: "mv", Partition: 0, Replicas: target}); err != nil {
		t.Fatal(err)
	}
	waitMeta(t, c.Nodes[target[0]-1], "mv", 0, "reassigned", func(pm *sluicev1.PartitionMetadata) bool {
		return slices.Equal(pm.GetReplicas(), target) && pm.GetLeader() > 0 && slices.Contains(target, pm.GetLeader())
	})
	for _, id := range target {
		waitRecords(t, c.Nodes[id-1], "mv", 0, 5)
	}
	produceN(t, c.Nodes[0], "mv", 0, 3)
	for _, id := range target {
		waitRecords(t, c.Nodes[id-1], "mv", 0, 8)
	}

	// Decommission node 4: every replica it holds moves to the others.
	resp, err := c.Nodes[1].Cluster.DecommissionNode(ctx, &sluicev1.DecommissionNodeRequest{NodeId: 4})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetReplicasToMove() == 0 {
		t.Fatal("node 4 held no replica to move")
	}
	for p := range int32(4) {
		pm := waitMeta(t, c.Nodes[0], "mv", p, "off node 4", func(pm *sluicev1.PartitionMetadata) bool {
			return !slices.Contains(pm.GetReplicas(), 4) && len(pm.GetReplicas()) == 2
		})
		// A replica's node knows the leader.
		waitMeta(t, c.Nodes[pm.GetReplicas()[0]-1], "mv", p, "led", func(pm *sluicev1.PartitionMetadata) bool {
			return pm.GetLeader() > 0 && pm.GetLeader() != 4
		})
		want := 5
		if p == 0 {
			want = 8
		}
		for _, id := range pm.GetReplicas() {
			waitRecords(t, c.Nodes[id-1], "mv", p, want)
		}
		produceN(t, c.Nodes[0], "mv", p, 1)
	}
	// New topics avoid the decommissioned node.
	ct, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "after", Partitions: 6, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ct.GetTopic().GetPartitions() {
		for _, r := range p.GetReplicas() {
			if r.GetNodeId() == 4 {
				t.Fatalf("partition %d placed on the decommissioned node", p.GetPartition())
			}
		}
	}
}

// A replica moved after DeleteRecords deleted segments installs the
// snapshot before the leader's first entry and then holds every record the
// leader keeps: a move does not shorten the partition.
func TestReassignAfterDeleteRecordsKeepsEveryRecord(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := ctxT(t)
	c.Join(t, 4)
	waitNodes(t, c.Nodes[0], 4)
	if _, err := c.Nodes[0].Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "kept", Partitions: 1, ReplicationFactor: 2,
		Configs: map[string]string{"segment.bytes": "4096"}}); err != nil {
		t.Fatal(err)
	}
	const total, cut = 300, 150
	produceN(t, c.Nodes[0], "kept", 0, total)
	leader := waitMeta(t, c.Nodes[0], "kept", 0, "led", func(pm *sluicev1.PartitionMetadata) bool { return pm.GetLeader() > 0 }).GetLeader()
	dr, err := c.Nodes[leader-1].Admin.DeleteRecords(ctx, &sluicev1.DeleteRecordsRequest{Topic: "kept", BeforeOffsets: map[int32]int64{0: cut}})
	if err != nil || dr.GetPartitions()[0].GetLogStartOffset() != cut {
		t.Fatalf("delete records: %v %v", dr, err)
	}
	old := partitionMeta(t, c.Nodes[0], "kept", 0).GetReplicas()
	var target []int32
	for id := int32(1); id <= 4; id++ {
		if !slices.Contains(old, id) {
			target = append(target, id)
		}
	}
	if _, err := c.Nodes[0].Cluster.ReassignPartition(ctx, &sluicev1.ReassignPartitionRequest{Topic: "kept", Partition: 0, Replicas: target}); err != nil {
		t.Fatal(err)
	}
	waitMeta(t, c.Nodes[target[0]-1], "kept", 0, "reassigned", func(pm *sluicev1.PartitionMetadata) bool {
		return slices.Equal(pm.GetReplicas(), target) && pm.GetLeader() > 0 && slices.Contains(target, pm.GetLeader())
	})
	installed := 0
	for _, id := range target {
		n := c.Nodes[id-1]
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := 0
			for _, b := range fetchAll(t, n, "kept", 0, cut, 0) {
				got += len(b.GetRecords())
			}
			if got == total-cut {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d holds %d records from offset %d, want %d", id, got, cut, total-cut)
			}
			time.Sleep(10 * time.Millisecond)
		}
		installed += snapshotsInstalled(t, n)
	}
	if installed == 0 {
		t.Fatal("no new replica installed a snapshot: DeleteRecords deleted no segment")
	}
}

// snapshotsInstalled reads a node's count of installed partition snapshots.
func snapshotsInstalled(t *testing.T, n *servertest.Node) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, "http://"+n.Server.HTTPAddr()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `sluice_replication_snapshots_total{op="install"} `); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(f)
		}
	}
	return 0
}
