package coordinator

import (
	"context"
	"maps"
	"slices"
)

// Join joins (or rejoins) a group and returns the member's session, with
// its first assignment pending. A stream already attached to the member
// (the previous incarnation of a static member) ends with ErrFenced.
func (c *Coordinator) Join(ctx context.Context, group string, p JoinParams) (*Session, error) {
	sh, err := c.waitShard(ctx, group)
	if err != nil {
		return nil, err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := sh.checkLocked(); err != nil {
		return nil, err
	}
	g, err := sh.groupLocked(group, true)
	if err != nil {
		return nil, err
	}
	m, changed, err := g.Join(p, c.cfg.Now())
	if err != nil {
		if len(g.Members) == 0 && len(g.Offsets) == 0 {
			delete(sh.mu.groups, group)
		}
		return nil, err
	}
	sess := &Session{shard: sh, group: group, member: m.ID, notify: make(chan struct{}, 1), done: make(chan struct{})}
	if sh.mu.sessions[group] == nil {
		sh.mu.sessions[group] = map[string]*Session{}
	}
	if old := sh.mu.sessions[group][m.ID]; old != nil {
		old.end(ErrFenced)
	}
	sh.mu.sessions[group][m.ID] = sess
	if err := sh.persistLocked(ctx, g, changed); err != nil {
		return nil, err
	}
	return sess, nil
}

// Commit stores offsets for a group, fenced by the member's epoch; an
// empty member id commits from outside the group (only while it is empty).
func (c *Coordinator) Commit(ctx context.Context, group, member string, epoch int32, offsets []OffsetCommit) error {
	if len(offsets) == 0 {
		return nil
	}
	sh, err := c.waitShard(ctx, group)
	if err != nil {
		return err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.commitLocked(ctx, group, member, epoch, offsets)
}

func (sh *shard) commitLocked(ctx context.Context, group, member string, epoch int32, offsets []OffsetCommit) error {
	c := sh.c
	if err := sh.checkLocked(); err != nil {
		return err
	}
	g, err := sh.groupLocked(group, member == "")
	if err != nil {
		if member != "" {
			return ErrUnknownMember
		}
		return err
	}
	tps := make([]TP, len(offsets))
	for i, o := range offsets {
		if o.Offset < 0 {
			return invalid("offset of %s/%d must not be negative", o.Topic, o.Partition)
		}
		tps[i] = o.TP
	}
	if err := g.CheckCommit(member, epoch, tps); err != nil {
		return err
	}
	if member != "" {
		_ = g.Heartbeat(member, epoch, c.cfg.Now())
	}
	now := c.cfg.Now().UnixMilli()
	if err := sh.writeLocked(ctx, offsetRecords(group, offsets, now)); err != nil {
		return err
	}
	for _, o := range offsets {
		g.Offsets[o.TP] = Committed{Offset: o.Offset, Metadata: o.Metadata, CommitTime: now}
	}
	c.metrics.committed(group, offsets)
	return nil
}

// Fetch returns a group's committed offsets for tps (all when empty); a
// partition without a commit has Offset -1. A fetch by a member (member
// set) is fenced like its commits.
func (c *Coordinator) Fetch(ctx context.Context, group, member string, epoch int32, tps []TP) (map[TP]Committed, error) {
	sh, err := c.waitShard(ctx, group)
	if err != nil {
		return nil, err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := sh.checkLocked(); err != nil {
		return nil, err
	}
	out := map[TP]Committed{}
	g := sh.mu.groups[group]
	if member != "" {
		if g == nil {
			return nil, ErrUnknownMember
		}
		if err := g.CheckCommit(member, epoch, tps); err != nil {
			return nil, err
		}
	}
	if len(tps) == 0 {
		if g != nil {
			maps.Copy(out, g.Offsets)
		}
		return out, nil
	}
	for _, tp := range tps {
		co, ok := Committed{Offset: -1}, false
		if g != nil {
			co, ok = g.Offsets[tp]
		}
		if !ok {
			co = Committed{Offset: -1}
		}
		out[tp] = co
	}
	return out, nil
}

// GroupInfo describes a group.
type GroupInfo struct {
	ID       string
	State    GroupState
	Assignor Assignor
	Epoch    int32
	Members  []MemberInfo
	Offsets  map[TP]Committed
	// Owner maps each assigned (or revoking) partition to its member.
	Owner map[TP]string
}

// MemberInfo describes a member.
type MemberInfo struct {
	ID, InstanceID, ClientID, ClientAddr string
	Epoch                                int32
	Assigned, Revoking                   []TP
	Connected                            bool
}

func infoOf(g *Group) GroupInfo {
	gi := GroupInfo{ID: g.ID, State: g.State(), Assignor: g.Assignor, Epoch: g.Epoch,
		Offsets: maps.Clone(g.Offsets), Owner: map[TP]string{}}
	for _, id := range slices.Sorted(maps.Keys(g.Members)) {
		m := g.Members[id]
		a := assignmentOf(m)
		gi.Members = append(gi.Members, MemberInfo{ID: id, InstanceID: m.InstanceID, ClientID: m.ClientID,
			ClientAddr: m.ClientAddr, Epoch: m.Epoch, Assigned: a.Assigned, Revoking: a.Revoking, Connected: m.Connected})
		for _, tp := range a.Assigned {
			gi.Owner[tp] = id
		}
		for _, tp := range a.Revoking {
			gi.Owner[tp] = id
		}
	}
	return gi
}

// Describe returns a group's state.
func (c *Coordinator) Describe(ctx context.Context, group string) (GroupInfo, error) {
	sh, err := c.waitShard(ctx, group)
	if err != nil {
		return GroupInfo{}, err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := sh.checkLocked(); err != nil {
		return GroupInfo{}, err
	}
	g, err := sh.groupLocked(group, false)
	if err != nil {
		return GroupInfo{}, err
	}
	return infoOf(g), nil
}

// List returns the groups this node coordinates, sorted by id.
func (c *Coordinator) List() []GroupInfo {
	var out []GroupInfo
	for _, sh := range c.loadedShards() {
		sh.mu.Lock()
		if sh.checkLocked() == nil {
			for _, g := range sh.mu.groups {
				out = append(out, infoOf(g))
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b GroupInfo) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// Reset overwrites committed offsets of a group without members (creating
// the group when it does not exist).
func (c *Coordinator) Reset(ctx context.Context, group string, offsets []OffsetCommit) error {
	sh, err := c.waitShard(ctx, group)
	if err != nil {
		return err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := sh.checkLocked(); err != nil {
		return err
	}
	if g := sh.mu.groups[group]; g != nil && len(g.Members) > 0 {
		return ErrGroupNotEmpty
	}
	return sh.commitLocked(ctx, group, "", 0, offsets)
}

// Delete deletes a group without members and its offsets.
func (c *Coordinator) Delete(ctx context.Context, group string) error {
	sh, err := c.waitShard(ctx, group)
	if err != nil {
		return err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := sh.checkLocked(); err != nil {
		return err
	}
	g, err := sh.groupLocked(group, false)
	if err != nil {
		return err
	}
	if len(g.Members) > 0 {
		return ErrGroupNotEmpty
	}
	if err := sh.writeLocked(ctx, []*record{{Type: recDelete, Group: group}}); err != nil {
		return err
	}
	delete(sh.mu.groups, group)
	delete(sh.mu.written, group)
	c.metrics.forget(group)
	return nil
}
