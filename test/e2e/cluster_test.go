package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// freeInternalPorts reserves n loopback addresses for internal listeners, which every
// node must know before any starts (--controller-quorum). The port is released before
// the node binds it; another process taking it in between fails the start, loudly. The
// ports are picked below the kernel's ephemeral range (32768 and up on Linux), where
// outgoing connections take their source ports.
func freeInternalPorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var ls []net.Listener
	for tries := 0; len(ls) < n; tries++ {
		if tries == 1000 {
			t.Fatal("no free loopback ports below 32000")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(22000)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

// clusterNodeArgs are the flags of node id of a cluster with the given quorum.
func clusterNodeArgs(id int, dataDir, internal, quorum string) []string {
	return []string{"server",
		"--node-id", fmt.Sprint(id),
		"--data-dir", dataDir,
		"--listen", "127.0.0.1:0",
		"--internal-listen", internal,
		"--http-listen", "127.0.0.1:0",
		"--controller-quorum", quorum,
		"--log-format", "json",
	}
}

// TestClusterKillLeaderLosesNoAcknowledgedRecord runs three `sluice server` processes
// with a controller quorum, produces with acks=all to a topic replicated three times,
// kills the leader of a partition with SIGKILL in the middle of the load, lets the two
// survivors elect new leaders and acknowledge more, then restarts the killed node and
// finds every acknowledged record at its acknowledged offset on every node.
func TestClusterKillLeaderLosesNoAcknowledgedRecord(t *testing.T) {
	needBinary(t)
	const (
		topic      = "replicated"
		partitions = 3
		producers  = 6
		beforeKill = 400
		afterKill  = 400
	)
	root := t.TempDir()
	internal := freeInternalPorts(t, 3)
	var q []string
	for i, a := range internal {
		q = append(q, fmt.Sprintf("%d@%s", i+1, a))
	}
	quorum := strings.Join(q, ",")
	args := func(i int) []string {
		return clusterNodeArgs(i+1, filepath.Join(root, fmt.Sprintf("node-%d", i+1)), internal[i], quorum)
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = launchProcess(t, args(i), nil)
	}
	for _, n := range nodes {
		n.waitReady()
	}
	createReplicatedTopic(t, nodes[0].dial(), topic, partitions)
	victim := leaderOf(t, nodes[0].dial(), topic, 0) - 1

	// Producers talk to the two nodes that survive; any node forwards to the leader.
	var survivors []*grpc.ClientConn
	for i, n := range nodes {
		if i != victim {
			survivors = append(survivors, n.dial())
		}
	}
	acked := &ackLog{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			produceUntilCancelled(ctx, survivors[p%len(survivors)], topic, partitions, fmt.Sprintf("p%d", p), acked)
		}()
	}
	waitAcked(t, acked, beforeKill, cancel, &wg)
	nodes[victim].kill()
	killedAt := acked.count.Load()
	t.Logf("killed node %d (leader of partition 0) with %d records acknowledged", victim+1, killedAt)
	waitAcked(t, acked, killedAt+afterKill, cancel, &wg)
	cancel()
	wg.Wait()
	t.Logf("%d records acknowledged in all", acked.count.Load())

	nodes[victim] = startProcess(t, args(victim), nil)
	for i, n := range nodes {
		t.Logf("verifying on node %d", i+1)
		verifyAcked(t, n.dial(), topic, partitions, acked.all())
	}
}

// waitAcked waits until at least want records are acknowledged; on the failure guard it
// stops the producers and fails.
func waitAcked(t *testing.T, acked *ackLog, want int64, cancel context.CancelFunc, wg *sync.WaitGroup) {
	t.Helper()
	guard := time.After(startDeadline)
	for acked.count.Load() < want {
		select {
		case <-guard:
			cancel()
			wg.Wait()
			t.Fatalf("only %d of %d records acknowledged after %v", acked.count.Load(), want, startDeadline)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// createReplicatedTopic creates a topic with three replicas, retrying while the cluster
// is still electing its controller.
func createReplicatedTopic(t *testing.T, conn *grpc.ClientConn, topic string, partitions int32) {
	t.Helper()
	admin := sluicev1.NewAdminServiceClient(conn)
	deadline := time.Now().Add(startDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		_, err := admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: topic, Partitions: partitions, ReplicationFactor: 3})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create topic: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaderOf waits until the partition has a leader and returns its node id.
func leaderOf(t *testing.T, conn *grpc.ClientConn, topic string, partition int32) int {
	t.Helper()
	admin := sluicev1.NewAdminServiceClient(conn)
	deadline := time.Now().Add(startDeadline)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		d, err := admin.DescribeTopic(ctx, &sluicev1.DescribeTopicRequest{Name: topic})
		cancel()
		if err == nil {
			for _, p := range d.GetTopic().GetPartitions() {
				if p.GetPartition() == partition && p.GetLeader() > 0 {
					return int(p.GetLeader())
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("partition %d of %q has no leader after %v", partition, topic, startDeadline)
	return 0
}
