// Package servertest starts Sluice nodes in the test process, on loopback
// with ephemeral ports, and hands out gRPC clients built from the
// generated stubs.
//
// Start runs one node; StartCluster runs several whose Raft traffic goes
// over a replication.MemNetwork, so tests can cut, delay and drop links
// between them.
package servertest

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication"
	"github.com/sluicehq/sluice/server"
)

// Node is one running node and a client connection to it.
type Node struct {
	Server *server.Server
	Conn   *grpc.ClientConn
	Config server.Config

	Producer sluicev1.ProducerServiceClient
	Consumer sluicev1.ConsumerServiceClient
	Admin    sluicev1.AdminServiceClient
	Cluster  sluicev1.ClusterServiceClient
	Group    sluicev1.GroupServiceClient
	Txn      sluicev1.TransactionServiceClient
}

// Config is the configuration Start uses for dir: ephemeral loopback
// ports and a fast Raft clock. Set SLUICE_TEST_LOG=1 to see the node's log.
func Config(dir string) server.Config {
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.InternalListenAddr = "127.0.0.1:0"
	cfg.HTTPListenAddr = "127.0.0.1:0"
	cfg.TickInterval = 10 * time.Millisecond
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// Start starts a node with cfg (see Config) and connects to it. The node
// is shut down when the test ends.
func Start(t testing.TB, cfg server.Config) *Node {
	t.Helper()
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	n, err := connect(s, cfg)
	if err != nil {
		_ = s.Shutdown(context.Background())
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(t) })
	return n
}

// Connect dials a server started by the test; the connection closes when
// the test ends (the server is the test's to shut down).
func Connect(t testing.TB, s *server.Server) *Node {
	t.Helper()
	n, err := connect(s, server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.Conn != nil {
			_ = n.Conn.Close()
		}
	})
	return n
}

// connect dials a started server and builds the clients.
func connect(s *server.Server, cfg server.Config) (*Node, error) {
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &Node{
		Server: s, Conn: conn, Config: cfg,
		Producer: sluicev1.NewProducerServiceClient(conn),
		Consumer: sluicev1.NewConsumerServiceClient(conn),
		Admin:    sluicev1.NewAdminServiceClient(conn),
		Cluster:  sluicev1.NewClusterServiceClient(conn),
		Group:    sluicev1.NewGroupServiceClient(conn),
		Txn:      sluicev1.NewTransactionServiceClient(conn),
	}, nil
}

// Stop closes the connection and shuts the node down (idempotent).
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if n.Conn != nil {
		_ = n.Conn.Close()
		n.Conn = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Server.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// Restart stops the node and starts a new one on the same data directory.
func (n *Node) Restart(t testing.TB) *Node {
	t.Helper()
	n.Stop(t)
	return Start(t, n.Config)
}

// Cluster is nodes started together, their Raft traffic carried by an
// in-process network the test can cut, delay or drop links on.
type Cluster struct {
	Nodes   []*Node
	Network *replication.MemNetwork
}

// StartCluster starts n nodes (ids 1..n, all voters of the metadata group)
// on loopback with ephemeral ports. They are shut down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{Network: replication.NewMemNetwork(), Nodes: make([]*Node, n)}
	voters := make([]uint64, n)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	t.Cleanup(c.Network.Close) // after every node's own cleanup
	var wg sync.WaitGroup
	errs := make(chan error, n)
	servers := make([]*server.Server, n)
	cfgs := make([]server.Config, n)
	for i := range n {
		cfg := Config(t.TempDir())
		cfg.NodeID = uint64(i + 1)
		cfg.ControllerVoters = voters
		cfg.Transport = c.Network.Transport(cfg.NodeID)
		cfgs[i] = cfg
		s, err := server.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = s
		wg.Add(1)
		go func() { // nodes wait for each other to elect a controller
			defer wg.Done()
			if err := s.Start(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for _, s := range servers {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
		})
	}
	for err := range errs {
		t.Fatal(err)
	}
	for i, s := range servers {
		node, err := connect(s, cfgs[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if node.Conn != nil { // Stop closes it
				_ = node.Conn.Close()
			}
		})
		c.Nodes[i] = node
	}
	// Each node is up once its own registration applied; wait until every
	// node knows every other and sees it alive.
	deadline := time.Now().Add(60 * time.Second)
	for _, node := range c.Nodes {
		for {
			dc, err := node.Cluster.DescribeCluster(context.Background(), &sluicev1.DescribeClusterRequest{})
			alive := 0
			for _, nd := range dc.GetNodes() {
				if nd.GetAlive() {
					alive++
				}
			}
			// Placement counts live nodes, so wait for liveness too, not only
			// registration.
			if err == nil && len(dc.GetNodes()) == n && alive == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d does not see all %d nodes: %v %v", node.Config.NodeID, n, dc, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return c
}

// Join starts a node outside the controller quorum that joins the cluster
// through the internal address of Nodes[0], on the same network, and adds
// it to Nodes. It is shut down when the test ends.
func (c *Cluster) Join(t testing.TB, id uint64) *Node {
	t.Helper()
	cfg := Config(t.TempDir())
	cfg.NodeID = id
	cfg.Transport = c.Network.Transport(id)
	cfg.Join = []string{c.Nodes[0].Server.InternalAddr()}
	node := Start(t, cfg)
	c.Nodes = append(c.Nodes, node)
	return node
}
