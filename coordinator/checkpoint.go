package coordinator

import (
	"context"
	"maps"
	"slices"
)

// Compaction of __consumer_offsets.
//
// The log holds every change ever made to the groups, but only the latest
// fact per key matters. Until the storage layer compacts topics, the
// coordinator keeps its partitions short itself: once the records since the
// log start pass Config.CheckpointRecords and twice the live state, it
// appends the whole live state (every group's membership and committed
// offsets) and deletes the log before it. Replaying from the new log start
// then rebuilds the same groups, so a new coordinator's load time follows the
// live state, not the history. The shard lock is held throughout, so no other
// write lands between the checkpoint's batches; if a write fails (leadership
// moved), nothing is deleted and the next leader replays the longer log.

// checkpointBatch bounds the records per batch of a checkpoint.
const checkpointBatch = 500

// liveRecordsLocked is the number of records a checkpoint would write.
func (s *shard) liveRecordsLocked() int {
	n := 0
	for _, g := range s.mu.groups {
		n += 1 + len(g.Members) + len(g.Offsets)
	}
	return n
}

// maybeCheckpointLocked checkpoints when the log has grown enough.
func (s *shard) maybeCheckpointLocked(ctx context.Context) {
	if s.checkLocked() != nil {
		return
	}
	live := s.liveRecordsLocked()
	if s.mu.sinceCheckpoint < s.c.cfg.CheckpointRecords || s.mu.sinceCheckpoint < 2*live {
		return
	}
	if err := s.checkpointLocked(ctx); err != nil {
		s.c.logger.Warn("checkpointing groups failed", "partition", s.index, "err", err)
	}
}

// checkpointLocked writes the live state and deletes the log before it.
func (s *shard) checkpointLocked(ctx context.Context) error {
	var (
		first   uint64
		started bool
		batch   []*record
		written = map[string]map[string]bool{}
		total   int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		off, err := s.appendLocked(ctx, batch)
		if err != nil {
			return err
		}
		if !started {
			first, started = off, true
		}
		total += len(batch)
		batch = nil
		return nil
	}
	for _, id := range slices.Sorted(maps.Keys(s.mu.groups)) {
		g := s.mu.groups[id]
		w := map[string]bool{}
		batch = append(batch, g.stateRecords(w)...)
		written[id] = w
		tps := sortTPs(slices.Collect(maps.Keys(g.Offsets)))
		for _, tp := range tps {
			co := g.Offsets[tp]
			batch = append(batch, &record{Type: recOffset, Group: id, Topic: tp.Topic, Partition: tp.Partition,
				Offset: co.Offset, Metadata: co.Metadata, CommitTime: co.CommitTime})
			if len(batch) >= checkpointBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if len(batch) >= checkpointBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if !started {
		// No groups: a marker is the checkpoint.
		off, err := s.appendLocked(ctx, []*record{{Type: recLoad, Node: s.c.cfg.NodeID}})
		if err != nil {
			return err
		}
		first = off
	}
	if _, err := s.part.DeleteRecords(ctx, first); err != nil {
		return err
	}
	s.mu.written = written
	s.mu.sinceCheckpoint = total
	s.c.logger.Debug("checkpointed groups", "partition", s.index, "records", total, "log_start", first)
	return nil
}
