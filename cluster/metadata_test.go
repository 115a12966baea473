package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/replication"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type node struct {
	host *replication.Host
	md   *Metadata
}

func openNode(t *testing.T, dir string) *node {
	t.Helper()
	h, err := replication.NewHost(replication.HostConfig{NodeID: 1, DataDir: dir, TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := Open(ctx, Config{NodeID: 1, Host: h, DataDir: dir, Addr: "127.0.0.1:1", DefaultPartitions: 2})
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	return &node{host: h, md: md}
}

func (n *node) close(t *testing.T) {
	t.Helper()
	if err := n.md.Close(); err != nil {
		t.Error(err)
	}
	if err := n.host.Close(); err != nil {
		t.Error(err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTopicLifecycleSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	s := n.md.State()
	if s.ClusterID == "" || s.Nodes[1] == nil || s.Nodes[1].Addr != "127.0.0.1:1" {
		t.Fatalf("bootstrap state: %+v", s)
	}
	clusterID := s.ClusterID
	ctx := ctxT(t)
	top, err := n.md.CreateTopic(ctx, TopicSpec{Name: "orders", Configs: map[string]string{ConfigRetentionMs: "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Partitions) != 2 || top.ReplicationFactor != 1 || top.ID == "" {
		t.Fatalf("topic: %+v", top)
	}
	for i := range int32(2) {
		if _, _, err := n.md.Partition("orders", i); err != nil {
			t.Fatalf("partition %d: %v", i, err)
		}
	}
	if _, err := n.md.CreateTopic(ctx, TopicSpec{Name: "orders"}); !errors.As(err, new(*TopicExistsError)) {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := n.md.CreateTopic(ctx, TopicSpec{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.md.AddPartitions(ctx, "orders", 3, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.md.AlterConfig(ctx, "orders", map[string]string{ConfigTimestampType: TimestampLogAppendTime}, []string{ConfigRetentionMs}, false); err != nil {
		t.Fatal(err)
	}
	pid1, err := n.md.NextProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := n.md.State().Topic("gone")
	goneDir := filepath.Join(dir, "partitions", partitionDir("gone", 0, gone.Partitions[0].GroupID))
	if _, err := os.Stat(goneDir); err != nil {
		t.Fatalf("replica dir: %v", err)
	}
	if err := n.md.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(goneDir); !os.IsNotExist(err) {
		t.Fatalf("deleted topic's dir still there: %v", err)
	}
	n.close(t)

	n = openNode(t, dir)
	defer n.close(t)
	s = n.md.State()
	if s.ClusterID != clusterID {
		t.Fatalf("cluster id changed: %q -> %q", clusterID, s.ClusterID)
	}
	top, ok := s.Topic("orders")
	if !ok || len(top.Partitions) != 3 || !top.Config().LogAppendTime || top.Config().RetentionMs != 604800000 {
		t.Fatalf("after restart: %+v", top)
	}
	if _, ok := s.Topic("gone"); ok {
		t.Fatal("deleted topic came back")
	}
	for i := range int32(3) {
		if _, _, err := n.md.Partition("orders", i); err != nil {
			t.Fatalf("partition %d after restart: %v", i, err)
		}
	}
	pid2, err := n.md.NextProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pid2 <= pid1 {
		t.Fatalf("producer id reused: %d then %d", pid1, pid2)
	}
}

func TestCreateTopicValidation(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.close(t)
	ctx := ctxT(t)
	cases := []struct {
		spec TopicSpec
		want any
	}{
		{TopicSpec{Name: ""}, new(*InvalidError)},
		{TopicSpec{Name: "__x"}, new(*InvalidError)},
		{TopicSpec{Name: "a/b"}, new(*InvalidError)},
		{TopicSpec{Name: "ok", Partitions: -1}, new(*InvalidError)},
		{TopicSpec{Name: "ok", ReplicationFactor: 2}, new(*InvalidError)},
		{TopicSpec{Name: "ok", Configs: map[string]string{"nope": "1"}}, new(*ConfigError)},
		{TopicSpec{Name: "ok", Configs: map[string]string{ConfigRetentionMs: "x"}}, new(*ConfigError)},
		{TopicSpec{Name: "ok", Configs: map[string]string{ConfigTimestampType: "Now"}}, new(*ConfigError)},
		{TopicSpec{Name: "ok", Configs: map[string]string{ConfigMinInsyncReplicas: "2"}}, new(*ConfigError)},
		{TopicSpec{Name: "ok", Configs: map[string]string{ConfigSegmentBytes: "10"}}, new(*ConfigError)},
		{TopicSpec{Name: "ok", Configs: map[string]string{ConfigCleanupPolicy: CleanupCompact}}, new(*ConfigError)},
		{TopicSpec{Name: "ok", Configs: map[string]string{ConfigCleanupPolicy: "shred"}}, new(*ConfigError)},
	}
	for _, c := range cases {
		_, err := n.md.CreateTopic(ctx, c.spec)
		if err == nil || !errors.As(err, c.want) {
			t.Errorf("%+v: got %v", c.spec, err)
		}
	}
	if top, err := n.md.CreateTopic(ctx, TopicSpec{Name: "ok", ValidateOnly: true}); err != nil || top == nil {
		t.Fatalf("validate only: %v", err)
	}
	if _, ok := n.md.State().Topic("ok"); ok {
		t.Fatal("validate only created the topic")
	}
	if len(n.md.cfg.Host.Partitions()) != 1 {
		t.Fatal("a rejected creation opened replicas")
	}
}

func TestOrphanedReplicaDirectoriesAreSwept(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	if _, err := n.md.CreateTopic(ctxT(t), TopicSpec{Name: "kept", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	n.close(t)
	orphan := filepath.Join(dir, "partitions", "gone-0.4242")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	n = openNode(t, dir)
	defer n.close(t)
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphaned directory still there: %v", err)
	}
	if _, _, err := n.md.Partition("kept", 0); err != nil {
		t.Fatalf("kept partition: %v", err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "partitions"))
	if err != nil || len(ents) != 2 {
		t.Fatalf("partition dirs: %v %v", ents, err)
	}
}

func TestUnreadableMetadataFreezesTheNode(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.close(t)
	ctx := ctxT(t)
	if _, err := n.md.CreateTopic(ctx, TopicSpec{Name: "stays", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	// A record no node can apply (written behind the controller's back).
	if _, err := n.md.part.Produce(ctx, replication.ProduceBatch{Data: []byte("not a batch"), Records: 1,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, replication.AcksAll); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.md.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the apply loop accepted a corrupt record")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := n.md.Partition("stays", 0); err != nil {
		t.Fatalf("a frozen node dropped a replica: %v", err)
	}
	if _, err := n.md.CreateTopic(ctx, TopicSpec{Name: "later"}); !errors.Is(err, ErrMetadataFailed) {
		t.Fatalf("a frozen node accepted a change: %v", err)
	}
}

func TestControllerTracksHeartbeats(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.close(t)
	now := time.Now()
	n.md.cfg.Now = func() time.Time { return now }
	if n.md.Alive(7) {
		t.Fatal("an unknown node is alive")
	}
	n.md.Heard(7)
	if !n.md.Alive(7) {
		t.Fatal("a node that just sent a heartbeat is not alive")
	}
	now = now.Add(LivenessTimeout)
	if n.md.Alive(7) {
		t.Fatal("a silent node stays alive")
	}
}

// A controller that just took over has not heard from anyone yet: it counts
// registered nodes alive for LivenessTimeout, then only those it heard from.
func TestNewControllerGivesRegisteredNodesTheBenefitOfTheDoubt(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.close(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.md.proposeMu.Lock()
	_, err := n.md.propose(ctx, &command{Type: cmdRegisterNode, Node: &NodeInfo{ID: 8, Addr: "127.0.0.1:1", InternalAddr: "127.0.0.1:2"}})
	n.md.proposeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); n.md.State().Nodes[8] == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the registration never applied")
		}
	}
	now := time.Now()
	n.md.cfg.Now = func() time.Time { return now }
	if !n.md.Alive(8) {
		t.Fatal("a registered node is dead to a controller that has just taken over")
	}
	if n.md.Alive(9) {
		t.Fatal("an unregistered node is alive")
	}
	now = now.Add(LivenessTimeout)
	if n.md.Alive(8) {
		t.Fatal("a registered node never heard from stays alive past the grace")
	}
	n.md.Heard(8)
	if !n.md.Alive(8) {
		t.Fatal("a node that just sent a heartbeat is not alive")
	}
}
