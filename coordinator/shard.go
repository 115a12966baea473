package coordinator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/replication"
	"github.com/sluicehq/sluice/storage"
)

// shard is one __consumer_offsets partition this node leads, with the
// groups that live in it.
type shard struct {
	c     *Coordinator
	index int32
	part  *replication.Partition

	mu struct {
		sync.Mutex
		loaded   bool
		gone     error // set once unloaded: every call fails with it
		groups   map[string]*Group
		written  map[string]map[string]bool     // group -> member ids in the log
		sessions map[string]map[string]*Session // group -> member -> attached stream
		// sinceCheckpoint counts records in the log from its start (the last
		// checkpoint, or the whole log at load).
		sinceCheckpoint int
	}
}

func newShard(c *Coordinator, index int32, p *replication.Partition) *shard {
	s := &shard{c: c, index: index, part: p}
	s.mu.groups = map[string]*Group{}
	s.mu.written = map[string]map[string]bool{}
	s.mu.sessions = map[string]map[string]*Session{}
	return s
}

// gone reports whether the shard was unloaded.
func (s *shard) gone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.gone != nil
}

func (s *shard) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.loaded && s.mu.gone == nil
}

// load rebuilds the groups: it writes a load marker (which commits only
// once everything before it is committed) and replays the log up to it.
func (s *shard) load(ctx context.Context, topics map[string]int32, now time.Time) error {
	start := time.Now()
	data, err := encodeRecords([]*record{{Type: recLoad, Node: s.c.cfg.NodeID}}, now.UnixMilli())
	if err != nil {
		return err
	}
	res, err := s.part.Produce(ctx, replication.ProduceBatch{Data: data, Records: 1, MaxTimestamp: now.UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, replication.AcksAll)
	if err != nil {
		return fmt.Errorf("load marker: %w", err)
	}
	groups := map[string]*Group{}
	n := 0
	for off := s.part.StartOffset(); off < res.BaseOffset; {
		batches, err := s.part.Read(off, 1<<20)
		if err != nil {
			var oor *storage.OffsetOutOfRangeError
			if errors.As(err, &oor) && oor.Start > off {
				off = oor.Start
				continue
			}
			return err
		}
		if len(batches) == 0 {
			return fmt.Errorf("coordinator: log ends at %d before the load marker at %d", off, res.BaseOffset)
		}
		for _, b := range batches {
			if b.BaseOffset >= res.BaseOffset {
				break
			}
			recs, err := decodeRecords(b.Data)
			if err != nil {
				return fmt.Errorf("offset %d: %w", b.BaseOffset, err)
			}
			replay(groups, recs, topics, now)
			n += len(recs)
			off = b.BaseOffset + uint64(b.Records)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.gone != nil {
		return s.mu.gone
	}
	s.mu.groups = groups
	for id, g := range groups {
		w := map[string]bool{}
		for mid := range g.Members {
			w[mid] = true
		}
		s.mu.written[id] = w
	}
	s.mu.loaded = true
	s.mu.sinceCheckpoint = n
	s.c.logger.Info("coordinating groups", "partition", s.index, "groups", len(groups), "records", n, "took", time.Since(start))
	return nil
}

// unload ends every attached session with cause and refuses later calls.
func (s *shard) unload(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.gone != nil {
		return
	}
	s.mu.gone = cause
	for _, byMember := range s.mu.sessions {
		for _, sess := range byMember {
			sess.end(cause)
		}
	}
	s.mu.sessions = map[string]map[string]*Session{}
}

// checkLocked fails when the shard is unloaded or loading.
func (s *shard) checkLocked() error {
	if s.mu.gone != nil {
		return s.mu.gone
	}
	if !s.mu.loaded {
		return ErrLoading
	}
	// A deposed leader must not answer from its memory: the groups may
	// have moved on at the new leader.
	if !s.part.IsLeader() {
		return &NotCoordinatorError{Leader: s.part.Leader()}
	}
	return nil
}

// writeLocked appends recs to the log (acks=all). A failed write leaves
// memory ahead of the log: the shard is dropped and rebuilt from the log.
func (s *shard) writeLocked(ctx context.Context, recs []*record) error {
	_, err := s.appendLocked(ctx, recs)
	return err
}

// appendLocked is writeLocked returning the offset of the batch.
func (s *shard) appendLocked(ctx context.Context, recs []*record) (uint64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	now := s.c.cfg.Now().UnixMilli()
	data, err := encodeRecords(recs, now)
	if err != nil {
		return 0, err
	}
	res, err := s.part.Produce(ctx, replication.ProduceBatch{Data: data, Records: uint32(len(recs)), MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, replication.AcksAll)
	if err != nil {
		var nl *replication.NotLeaderError
		cause := error(&NotCoordinatorError{})
		if errors.As(err, &nl) {
			cause = &NotCoordinatorError{Leader: nl.Leader}
		}
		s.c.logger.Warn("writing group state failed; reloading", "partition", s.index, "err", err)
		s.mu.gone = cause
		for _, byMember := range s.mu.sessions {
			for _, sess := range byMember {
				sess.end(cause)
			}
		}
		s.mu.sessions = map[string]map[string]*Session{}
		s.c.poke() // the watch loop forgets this shard and reloads it while leading
		return 0, cause
	}
	s.mu.sinceCheckpoint += len(recs)
	return res.BaseOffset, nil
}

// persistLocked writes a group's membership after a change and publishes
// the new assignments of the changed members.
func (s *shard) persistLocked(ctx context.Context, g *Group, changed []string) error {
	w := s.mu.written[g.ID]
	if w == nil {
		w = map[string]bool{}
		s.mu.written[g.ID] = w
	}
	if err := s.writeLocked(ctx, g.stateRecords(w)); err != nil {
		return err
	}
	for _, id := range changed {
		if sess := s.mu.sessions[g.ID][id]; sess != nil {
			sess.publish(assignmentOf(g.Members[id]))
		}
	}
	return nil
}

// tick expires sessions and applies topic changes.
func (s *shard) tick(now time.Time, topics map[string]int32, topicsChanged bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checkLocked() != nil {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(s.mu.groups)) {
		g := s.mu.groups[id]
		expired, changed := g.Expire(now)
		for _, mid := range expired {
			if sess := s.mu.sessions[id][mid]; sess != nil {
				sess.end(ErrUnknownMember)
				delete(s.mu.sessions[id], mid)
			}
			s.c.logger.Info("member expelled: session timed out", "group", id, "member", mid)
		}
		if topicsChanged {
			changed = union(changed, g.SetTopics(topics))
		}
		if len(expired) > 0 || len(changed) > 0 {
			if s.persistLocked(ctx, g, changed) != nil {
				return
			}
		}
	}
	s.maybeCheckpointLocked(ctx)
}

// groupLocked returns a group, creating it when create is set.
func (s *shard) groupLocked(id string, create bool) (*Group, error) {
	g := s.mu.groups[id]
	if g == nil {
		if !create {
			return nil, ErrUnknownGroup
		}
		g = NewGroup(id, s.c.topics())
		s.mu.groups[id] = g
	}
	return g, nil
}
