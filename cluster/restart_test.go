package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// warnings is a slog handler that keeps the messages of warnings and errors
// (and of information, with info).
type warnings struct {
	mu   *sync.Mutex
	msgs *[]string
	info bool
}

func (w warnings) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || (w.info && l >= slog.LevelInfo)
}
func (w warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	*w.msgs = append(*w.msgs, r.Message)
	w.mu.Unlock()
	return nil
}
func (w warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnings) WithGroup(string) slog.Handler      { return w }

// startThreeIn starts (or restarts) three voters with their data in dirs,
// together, as servers do: a node's forwarded registration reaches the
// controller only once the controller's own Open has returned. It returns
// the nodes and a function that stops them.
func startThreeIn(t *testing.T, net *replication.MemNetwork, dirs map[uint64]string, logger *slog.Logger, opts ...func(*Config)) (map[uint64]*node, func()) {
	t.Helper()
	return startThreeHosts(t, net, dirs, logger, nil, opts...)
}

// startThreeHosts is startThreeIn with hostOpt (if not nil) applied to each
// node's replication host configuration.
func startThreeHosts(t *testing.T, net *replication.MemNetwork, dirs map[uint64]string, logger *slog.Logger,
	hostOpt func(*replication.HostConfig), opts ...func(*Config)) (map[uint64]*node, func()) {
	t.Helper()
	var (
		mu    sync.Mutex
		nodes = map[uint64]*node{}
	)
	forward := func(ctx context.Context, to NodeInfo, cmd []byte) (uint64, error) {
		mu.Lock()
		n := nodes[to.ID]
		mu.Unlock()
		if n == nil {
			return 0, &NotControllerError{} // not serving yet: the caller retries
		}
		return n.md.HandleForwarded(ctx, cmd)
	}
	hosts := map[uint64]*replication.Host{}
	for id := uint64(1); id <= 3; id++ {
		hc := replication.HostConfig{NodeID: id, DataDir: dirs[id], Transport: net.Transport(id),
			TickInterval: 10 * time.Millisecond}
		if hostOpt != nil {
			hostOpt(&hc)
		}
		h, err := replication.NewHost(hc)
		if err != nil {
			t.Fatal(err)
		}
		hosts[id] = h
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for id, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cfg := Config{NodeID: id, Host: h, DataDir: dirs[id], Addr: fmt.Sprintf("127.0.0.%d:9700", id),
				Voters: []uint64{1, 2, 3}, Forward: forward, Logger: logger}
			for _, o := range opts {
				o(&cfg)
			}
			md, err := Open(ctx, cfg)
			if err != nil {
				errs <- fmt.Errorf("node %d: %w", id, err)
				return
			}
			mu.Lock()
			nodes[id] = &node{host: h, md: md}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	stop := func() {
		for _, n := range nodes {
			_ = n.md.Close()
		}
		for _, h := range hosts {
			_ = h.Close()
		}
	}
	for err := range errs {
		stop()
		t.Fatal(err)
	}
	return nodes, stop
}

// When the whole cluster restarts, every node opens its replicas before its
// registration (which waits for the controller) completes, so no node's
// Open has to give up waiting for its replicas to catch up.
func TestWholeClusterRestartOpensReplicasBeforeRegistering(t *testing.T) {
	net := replication.NewMemNetwork()
	defer net.Close()
	dirs := map[uint64]string{1: t.TempDir(), 2: t.TempDir(), 3: t.TempDir()}
	nodes, stop := startThreeIn(t, net, dirs, nil)
	ctx := ctxT(t)
	onController(t, nodes, func(ctl *node) error {
		_, err := ctl.md.CreateTopic(ctx, TopicSpec{Name: "r", Partitions: 3, ReplicationFactor: 3})
		return err
	})
	eventually(t, "every replica has a leader", func() bool {
		for _, n := range nodes {
			for i := range int32(3) {
				if p, _, err := n.md.Partition("r", i); err != nil || p.Leader() == 0 {
					return false
				}
			}
		}
		return true
	})
	stop()

	var (
		mu   sync.Mutex
		msgs []string
	)
	nodes, stop = startThreeIn(t, net, dirs, slog.New(warnings{mu: &mu, msgs: &msgs}))
	defer stop()
	mu.Lock()
	defer mu.Unlock()
	for _, m := range msgs {
		if strings.Contains(m, "catching up") {
			t.Fatalf("a node's Open gave up waiting for its replicas: %q (all warnings: %q)", m, msgs)
		}
	}
	for id, n := range nodes {
		for i := range int32(3) {
			if _, _, err := n.md.Partition("r", i); err != nil {
				t.Fatalf("node %d, partition %d after the restart: %v", id, i, err)
			}
		}
	}
}
