package cluster

import (
	"encoding/json"
	"errors"
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

// A node that joins once the compaction deleted segments of the metadata
// log gets a Raft snapshot of the partition, so its log starts before the
// controller's snapshot record, not at it: it skips to that record and
// reaches the controller's state.
func TestNodeJoiningAfterCompactionReadsTheSnapshot(t *testing.T) {
	net := replication.NewMemNetwork()
	dirs := map[uint64]string{1: t.TempDir(), 2: t.TempDir(), 3: t.TempDir()}
	small := func(h *replication.HostConfig) { h.Storage.SegmentBytes = 1024 }
	nodes, stop := startThreeHosts(t, net, dirs, nil, small, func(c *Config) { c.SnapshotEvery = 4 })
	t.Cleanup(func() {
		stop()
		net.Close()
	})
	ctx := ctxT(t)
	for i := range 12 {
		onController(t, nodes, func(ctl *node) error {
			_, err := ctl.md.CreateTopic(ctx, TopicSpec{Name: fmt.Sprintf("t%d", i), Partitions: 1, ReplicationFactor: 1})
			return err
		})
	}
	eventually(t, "the controller deletes segments of the metadata log", func() bool {
		ctl := controller(t, nodes)
		st := ctl.md.part.Status()
		return st.FirstIndex > 1 && st.StartOffset == ctl.md.State().SnapshotAt
	})
	fourth := joinFourth(t, nodes, net)
	eventually(t, "node 4 reaches the controller's state", func() bool {
		if err := fourth.md.Err(); err != nil {
			t.Fatalf("node 4: %v", err)
		}
		return stateJSON(t, fourth.md.State()) == stateJSON(t, controller(t, nodes).md.State())
	})
	if first := fourth.md.part.Status().FirstIndex; first <= 1 {
		t.Fatalf("node 4's metadata log starts at index %d: it did not start from a Raft snapshot", first)
	}
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

// While seeking (the log starts past what the node applied), the records
// before the first snapshot of the state before it are skipped, and the
// ones after it apply; without seeking such a record is a gap.
func TestApplySeeksToTheFirstSnapshot(t *testing.T) {
	m := &Metadata{logger: slog.New(slog.DiscardHandler)}
	m.mu.state, m.mu.changed, m.mu.rejected = newState(), make(chan struct{}), map[uint64]error{}
	enc := func(c *command) []byte {
		b, err := encodeCommand(c, 1)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	register := func(id uint64) []byte {
		return enc(&command{Type: cmdRegisterNode, ClusterID: "c", Node: &NodeInfo{ID: id, Addr: fmt.Sprintf("n%d", id)}})
	}
	if _, err := m.applyBatch(10, 1, register(1), false); !errors.Is(err, errMetadataGap) {
		t.Fatalf("a record past the applied state, not seeking: %v, want a gap", err)
	}
	snap := newState()
	snap.ClusterID, snap.Applied = "c", 12
	snap.Nodes[2] = &NodeInfo{ID: 2, Addr: "n2"}
	stale := newState()
	stale.Applied = 5 // a snapshot record that landed at another offset
	steps := []struct {
		off         uint64
		data        []byte
		wantSeeking bool
	}{
		{10, register(1), true},
		{11, enc(&command{Type: cmdSnapshot, Snapshot: stale}), true},
		{12, enc(&command{Type: cmdSnapshot, Snapshot: snap}), false},
		{13, register(3), false},
	}
	seeking := true
	for _, st := range steps {
		var err error
		if seeking, err = m.applyBatch(st.off, 1, st.data, seeking); err != nil || seeking != st.wantSeeking {
			t.Fatalf("record %d: seeking %v, %v; want seeking %v", st.off, seeking, err, st.wantSeeking)
		}
	}
	s := m.State()
	if s.Applied != 14 || s.Nodes[1] != nil || s.Nodes[2] == nil || s.Nodes[3] == nil {
		t.Fatalf("state applied %d with nodes %v; want 14 with nodes 2 (the snapshot's) and 3", s.Applied, s.Nodes)
	}
}
