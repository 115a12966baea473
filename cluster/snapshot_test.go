package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/replication"
)

// stateJSON is a comparable form of a node's state.
func stateJSON(t *testing.T, s *State) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The controller snapshots the metadata state every few records and
// compacts the log below the snapshot once every replica has caught up (a
// node cut off holds it back); a restarted cluster rebuilds the same
// state from the snapshot.
func TestMetadataSnapshotCompactsTheLog(t *testing.T) {
	net := replication.NewMemNetwork()
	defer net.Close()
	dirs := map[uint64]string{1: t.TempDir(), 2: t.TempDir(), 3: t.TempDir()}
	every := func(c *Config) { c.SnapshotEvery = 4 }
	nodes, stop := startThreeIn(t, net, dirs, nil, every)
	ctx := ctxT(t)
	ctl := controller(t, nodes)
	var lagging uint64 // a node other than the controller, cut off while the log is compacted
	var others []uint64
	for id := range nodes {
		if id != ctl.md.NodeID() && lagging == 0 {
			lagging = id
		} else {
			others = append(others, id)
		}
	}
	net.Isolate(lagging, others...)
	for i := range 10 {
		onController(t, nodes, func(ctl *node) error {
			_, err := ctl.md.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("t%d", i), Partitions: 1, ReplicationFactor: 1})
			return err
		})
	}
	eventually(t, "the controller snapshots the state", func() bool {
		return controller(t, nodes).md.State().SnapshotAt > 0
	})
	if start := controller(t, nodes).md.part.StartOffset(); start != 0 {
		t.Fatalf("the metadata log was compacted to %d while node %d was cut off", start, lagging)
	}
	net.HealAll()
	eventually(t, "the controller compacts the metadata log", func() bool {
		ctl := controller(t, nodes)
		s := ctl.md.State()
		return s.SnapshotAt > 0 && ctl.md.part.StartOffset() == s.SnapshotAt
	})
	eventually(t, "every node reaches the same state, with a compacted log", func() bool {
		want := stateJSON(t, controller(t, nodes).md.State())
		for _, n := range nodes {
			if stateJSON(t, n.md.State()) != want || n.md.part.StartOffset() == 0 || n.md.Err() != nil {
				return false
			}
		}
		return true
	})
	want := stateJSON(t, controller(t, nodes).md.State())
	stop()

	var (
		mu   sync.Mutex
		msgs []string
	)
	nodes, stop = startThreeIn(t, net, dirs, slog.New(warnings{mu: &mu, msgs: &msgs, info: true}), every)
	defer stop()
	mu.Lock()
	restored := 0
	for _, m := range msgs {
		if strings.Contains(m, "reading from its snapshot") {
			restored++
		}
	}
	mu.Unlock()
	if restored != 3 {
		t.Fatalf("%d nodes started from the snapshot, want 3", restored)
	}
	for id, n := range nodes {
		if err := n.md.Err(); err != nil {
			t.Fatalf("node %d after the restart: %v", id, err)
		}
		if _, ok := n.md.State().Topics["t9"]; !ok {
			t.Fatalf("node %d lost topics across the restart: %v", id, n.md.State().TopicNames())
		}
	}
	// Each node registered again on top of the snapshot; the rest is equal.
	eventually(t, "every node holds the state from before the restart", func() bool {
		for _, n := range nodes {
			s := *n.md.State()
			var before State
			if err := json.Unmarshal([]byte(want), &before); err != nil {
				t.Fatal(err)
			}
			if len(s.Topics) != len(before.Topics) || len(s.Nodes) != 3 || s.NextGroupID != before.NextGroupID ||
				s.ClusterID != before.ClusterID || s.NextProducerID != before.NextProducerID {
				return false
			}
		}
		return true
	})
}

// FuzzRestoreSnapshot feeds decoded snapshot records to restoreSnapshot:
// it must reject or restore, never panic, and a restored state must be
// usable (topics with their parsed configuration).
func FuzzRestoreSnapshot(f *testing.F) {
	s := newState()
	s.Nodes[1] = &NodeInfo{ID: 1, Addr: "a"}
	s.Topics["t"] = &Topic{Name: "t", ID: "id", ReplicationFactor: 1, Configs: map[string]string{ConfigRetentionMs: "5"},
		Partitions: []PartitionInfo{{Index: 0, GroupID: firstTopicGroupID, Replicas: []uint64{1}}}}
	s.Applied = 7
	b, err := encodeCommand(&command{Type: cmdSnapshot, Snapshot: s}, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, off uint64) {
		cmds, err := decodeCommands(data)
		if err != nil {
			return
		}
		for _, c := range cmds {
			if c.Type != cmdSnapshot {
				continue
			}
			ns, err := restoreSnapshot(newState(), c, off)
			if err != nil {
				continue
			}
			for _, top := range ns.Topics {
				_ = top.Config()
				_ = top.ConfigEntries()
			}
			_ = ns.clone()
		}
	})
}
