package server_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/server/servertest"
)

// freeAddrs reserves n loopback addresses (closed again at once; the
// nodes bind them right after).
func freeAddrs(t *testing.T, n int) []string {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Addr().String())
		_ = l.Close()
	}
	return out
}

// TestControllerQuorumOverGRPC runs three nodes that find each other only
// through their configured controller quorum and talk Raft over their
// internal listeners, as separate processes would.
func TestControllerQuorumOverGRPC(t *testing.T) {
	internal := freeAddrs(t, 3)
	var quorum []string
	for i, a := range internal {
		quorum = append(quorum, fmt.Sprintf("%d@%s", i+1, a))
	}
	servers := make([]*server.Server, 3)
	for i := range servers {
		cfg := servertest.Config(t.TempDir())
		cfg.NodeID = uint64(i + 1)
		cfg.InternalListenAddr = internal[i]
		cfg.ControllerQuorum = quorum
		s, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = s
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Start()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n1 := servertest.Connect(t, servers[0])
	n3 := servertest.Connect(t, servers[2])
	ctx := ctxT(t)
	if _, err := n3.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "q", Partitions: 2, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		n := []*servertest.Node{n1, n3}[i%2]
		if _, err := n.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "q", Partition: proto.Int32(int32(i % 2)),
			Batch: &sluicev1.RecordBatch{Records: records(1, "q")}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*servertest.Node{n1, n3} {
		for p := range int32(2) {
			eventuallyT(t, func() bool {
				got := 0
				for _, b := range fetchAll(t, n, "q", p, 0, 0) {
					got += len(b.GetRecords())
				}
				return got == 3
			})
		}
	}
	dc, err := n1.Cluster.DescribeCluster(ctx, &sluicev1.DescribeClusterRequest{})
	if err != nil || len(dc.GetNodes()) != 3 {
		t.Fatalf("cluster: %v %v", dc, err)
	}
}
