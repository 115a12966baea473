package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

// Snapshots of the metadata state and compaction of its log.
//
// Every SnapshotEvery records the controller appends a snapshot record: a
// command holding the whole State as it stood right before the record
// (its Applied is the record's offset). Applying it replaces the state;
// on a node that applied everything before it, the two are equal (apply
// is deterministic). A snapshot record that lands at another offset (a
// command slipped in between) is skipped on every node alike, and the
// controller tries again. Once the record is applied, the controller
// deletes the metadata log below it (Partition.DeleteRecords, replicated
// like any record): the log then starts with a snapshot, so a node that
// restarts, or lags behind the new log start, reads the snapshot first
// and continues from there (applyLoop). A record that does not follow the
// applied state, and is not a snapshot of it, stops the apply loop
// (errMetadataGap): the state would silently differ from its peers'.
//
// Compaction waits until every replica of the metadata group is active and
// caught up. A replica that joins later, once DeleteRecords deleted whole
// segments of the log, gets a Raft snapshot of the partition: its log then
// starts after a segment end, at or before the snapshot record (retention
// cuts only at segment ends, and only below the record). Its apply loop
// skips the records before the first snapshot record (applyLoop, seeking).

// errMetadataGap: a record does not follow the applied state.
var errMetadataGap = errors.New("cluster: metadata record after a gap in the log")

// DefaultSnapshotEvery is Config.SnapshotEvery's default.
const DefaultSnapshotEvery = 1000

// restoreSnapshot applies a snapshot record at off to s.
func restoreSnapshot(s *State, c *command, off uint64) (*State, error) {
	snap := c.Snapshot
	if snap == nil || snap.Applied != off {
		if off > s.Applied {
			return nil, fmt.Errorf("%w: record %d (a snapshot of %d) follows %d", errMetadataGap, off, snapApplied(snap), s.Applied)
		}
		return s, &InvalidError{Field: "snapshot", Reason: "not a snapshot of the state before it"}
	}
	n := newState()
	n.ClusterID, n.Applied, n.NextGroupID, n.NextProducerID, n.SnapshotAt =
		snap.ClusterID, snap.Applied, snap.NextGroupID, snap.NextProducerID, off
	maps.Copy(n.Nodes, snap.Nodes)
	maps.Copy(n.ProducerBlocks, snap.ProducerBlocks)
	maps.Copy(n.Decommissioned, snap.Decommissioned)
	for name, t := range snap.Topics {
		if t == nil {
			return nil, fmt.Errorf("%w: snapshot topic %q", errCorruptCommand, name)
		}
		t = cloneTopic(t)
		t.parsed = parseTopicConfig(t.Configs)
		n.Topics[name] = t
	}
	for id, node := range n.Nodes {
		if node == nil {
			return nil, fmt.Errorf("%w: snapshot node %d", errCorruptCommand, id)
		}
	}
	return n, nil
}

func snapApplied(s *State) uint64 {
	if s == nil {
		return 0
	}
	return s.Applied
}

// maybeSnapshot (on the controller) appends a snapshot record once
// SnapshotEvery records followed the last one, and compacts the metadata
// log up to the last snapshot record. It reports whether it has more to do.
func (m *Metadata) maybeSnapshot(s *State) bool {
	every := m.cfg.SnapshotEvery
	if every <= 0 || !m.part.IsLeader() {
		return false
	}
	busy := false
	if s.Applied-s.SnapshotAt >= uint64(every) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := m.snapshot(ctx)
		cancel()
		if err != nil {
			m.logger.Debug("metadata snapshot", "err", err)
			busy = true
		}
		s = m.State()
	}
	if s.SnapshotAt > m.part.StartOffset() {
		if !m.replicasCaughtUp() {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start, err := m.part.DeleteRecords(ctx, s.SnapshotAt)
		cancel()
		if err != nil {
			m.logger.Debug("compacting the metadata log", "before", s.SnapshotAt, "err", err)
			return true
		}
		m.logger.Debug("metadata log compacted", "start", start)
	}
	return busy
}

// replicasCaughtUp reports whether every replica of the metadata group is
// active and has the leader's whole log. Compaction waits for it: the log's segments below the start may then
// be deleted, and a replica behind them would get a Raft snapshot of the
// partition, which does not carry the records it would need.
func (m *Metadata) replicasCaughtUp() bool {
	for _, r := range m.part.Status().Replicas {
		if !r.Active || r.Lag > 0 {
			return false
		}
	}
	return true
}

// snapshot appends a snapshot of the current state.
func (m *Metadata) snapshot(ctx context.Context) error {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	if err := m.checkController(); err != nil {
		return err
	}
	cur := m.State()
	_, err := m.propose(ctx, &command{Type: cmdSnapshot, Snapshot: cur})
	return err
}
