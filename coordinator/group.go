package coordinator

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"time"
)

// GroupState is a group's lifecycle state.
type GroupState int

// Group states, numbered as the API's GroupState enum.
const (
	StateUnspecified GroupState = iota
	StateEmpty
	StateReconciling
	StateStable
	StateDead
)

func (s GroupState) String() string {
	return [...]string{"unspecified", "empty", "reconciling", "stable", "dead"}[s]
}

// Member is one member of a group as the coordinator sees it.
type Member struct {
	ID         string
	InstanceID string
	ClientID   string
	ClientAddr string
	Sub        Subscription
	sub        compiled
	// Epoch is bumped whenever the member's assignment grows, its
	// revocation completes, or a static member rejoins.
	Epoch int32
	// Assigned maps each partition the member may consume to the member
	// epoch it was given at; commits for it need an epoch at least that.
	Assigned map[TP]int32
	// Revoking are partitions the member must give up and confirm.
	Revoking       map[TP]int32
	SessionTimeout time.Duration
	// Deadline is when the member is expelled unless heard from.
	Deadline time.Time
	// Connected is false for a static member whose stream closed (it
	// keeps its place until Deadline) and for members rebuilt from the
	// log until they reconnect.
	Connected bool
}

// owns reports whether the member owns tp (assigned or still revoking).
func (m *Member) owns(tp TP) (int32, bool) {
	if e, ok := m.Assigned[tp]; ok {
		return e, true
	}
	e, ok := m.Revoking[tp]
	return e, ok
}

// Group is one consumer group's state machine: membership, target
// assignment, incremental reconciliation, and committed offsets. It does
// no I/O and reads no clock: callers pass the time. Not safe for
// concurrent use (the shard's lock guards it).
type Group struct {
	ID       string
	Epoch    int32 // group epoch: bumped on every membership, subscription or metadata change
	Assignor Assignor
	Members  map[string]*Member
	// Target is the assignor's latest output, per member.
	Target  map[string]map[TP]bool
	Offsets map[TP]Committed

	topics map[string]int32 // the cluster's topics as last seen
}

// NewGroup returns an empty group that sees topics (name -> partitions).
func NewGroup(id string, topics map[string]int32) *Group {
	return &Group{ID: id, Assignor: AssignorUniformSticky, Members: map[string]*Member{},
		Target: map[string]map[TP]bool{}, Offsets: map[TP]Committed{}, topics: topics}
}

// State is the group's lifecycle state.
func (g *Group) State() GroupState {
	if len(g.Members) == 0 {
		return StateEmpty
	}
	for id, m := range g.Members {
		if len(m.Revoking) > 0 || len(m.Assigned) != len(g.Target[id]) {
			return StateReconciling
		}
		for tp := range m.Assigned {
			if !g.Target[id][tp] {
				return StateReconciling
			}
		}
	}
	return StateStable
}

// JoinParams is a member's join.
type JoinParams struct {
	// MemberID and MemberEpoch rejoin as an existing member (after a
	// coordinator failover or a broken stream); unknown ids join anew.
	MemberID       string
	MemberEpoch    int32
	InstanceID     string
	ClientID       string
	ClientAddr     string
	Sub            Subscription
	Assignor       Assignor
	SessionTimeout time.Duration
}

// Join adds a member (or reattaches a returning one) and returns it with
// the members whose assignment changed (the joiner always among them).
// replaced is the id of a member whose stream this join fences (a static
// member's previous incarnation, or the same member's older stream).
func (g *Group) Join(p JoinParams, now time.Time) (m *Member, changed []string, err error) {
	c, err := compile(p.Sub)
	if err != nil {
		return nil, nil, err
	}
	if p.SessionTimeout == 0 {
		p.SessionTimeout = DefaultSessionTimeout
	}
	if p.SessionTimeout < MinSessionTimeout || p.SessionTimeout > MaxSessionTimeout {
		return nil, nil, invalid("session timeout must be between %v and %v", MinSessionTimeout, MaxSessionTimeout)
	}
	if p.Assignor != AssignorUnspecified && len(g.Members) == 0 {
		g.Assignor = p.Assignor
	}
	var existing *Member
	if p.InstanceID != "" {
		for _, o := range g.Members {
			if o.InstanceID == p.InstanceID {
				existing = o
			}
		}
	} else if p.MemberID != "" {
		existing = g.Members[p.MemberID]
	}
	if existing != nil {
		// A returning member keeps its id and partitions; the new epoch
		// fences whatever the previous stream still sends.
		existing.Connected = true
		existing.ClientID, existing.ClientAddr = p.ClientID, p.ClientAddr
		existing.SessionTimeout = p.SessionTimeout
		existing.Deadline = now.Add(p.SessionTimeout)
		existing.Epoch++
		for tp := range existing.Assigned {
			existing.Assigned[tp] = existing.Epoch
		}
		for tp := range existing.Revoking {
			existing.Revoking[tp] = existing.Epoch
		}
		changed = []string{existing.ID}
		if !slices.Equal(existing.Sub.Topics, p.Sub.Topics) || existing.Sub.Pattern != p.Sub.Pattern {
			existing.Sub, existing.sub = p.Sub, c
			g.retarget()
		}
		return existing, union(changed, g.reconcile()), nil
	}
	m = &Member{ID: newMemberID(), InstanceID: p.InstanceID, ClientID: p.ClientID, ClientAddr: p.ClientAddr,
		Sub: p.Sub, sub: c, Epoch: g.Epoch + 1, Assigned: map[TP]int32{}, Revoking: map[TP]int32{},
		SessionTimeout: p.SessionTimeout, Deadline: now.Add(p.SessionTimeout), Connected: true}
	g.Members[m.ID] = m
	g.retarget()
	return m, union([]string{m.ID}, g.reconcile()), nil
}

// newMemberID returns a new member id (tests make it sequential).
var newMemberID = randomMemberID

func randomMemberID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// member returns the member or ErrUnknownMember.
func (g *Group) member(id string) (*Member, error) {
	m, ok := g.Members[id]
	if !ok {
		return nil, ErrUnknownMember
	}
	return m, nil
}

// Heartbeat keeps a member alive.
func (g *Group) Heartbeat(id string, epoch int32, now time.Time) error {
	m, err := g.member(id)
	if err != nil {
		return err
	}
	if epoch > m.Epoch {
		return &StaleEpochError{Member: id, Epoch: epoch, CurrentEpoch: m.Epoch, Reason: "epoch from the future"}
	}
	m.Deadline = now.Add(m.SessionTimeout)
	return nil
}

// Confirm records that a member gave up its revoking partitions.
func (g *Group) Confirm(id string, epoch int32, now time.Time) ([]string, error) {
	m, err := g.member(id)
	if err != nil {
		return nil, err
	}
	m.Deadline = now.Add(m.SessionTimeout)
	if epoch != m.Epoch {
		return nil, &StaleEpochError{Member: id, Epoch: epoch, CurrentEpoch: m.Epoch, Reason: "confirmation of an older revocation"}
	}
	if len(m.Revoking) == 0 {
		return nil, nil
	}
	clear(m.Revoking)
	m.Epoch++
	return union([]string{id}, g.reconcile()), nil
}

// UpdateSubscription changes a member's subscription.
func (g *Group) UpdateSubscription(id string, sub Subscription, now time.Time) ([]string, error) {
	m, err := g.member(id)
	if err != nil {
		return nil, err
	}
	c, err := compile(sub)
	if err != nil {
		return nil, err
	}
	m.Deadline = now.Add(m.SessionTimeout)
	m.Sub, m.sub = sub, c
	g.retarget()
	return g.reconcile(), nil
}

// Leave removes a member; its partitions go to others at once.
func (g *Group) Leave(id string) ([]string, error) {
	if _, err := g.member(id); err != nil {
		return nil, err
	}
	delete(g.Members, id)
	delete(g.Target, id)
	g.retarget()
	return g.reconcile(), nil
}

// Disconnect is a closed stream: a dynamic member leaves, a static one
// keeps its place (and partitions, unconsumed) until its session times out.
func (g *Group) Disconnect(id string, now time.Time) ([]string, error) {
	m, err := g.member(id)
	if err != nil {
		return nil, err
	}
	if m.InstanceID == "" {
		return g.Leave(id)
	}
	m.Connected = false
	m.Deadline = now.Add(m.SessionTimeout)
	// Nobody consumes its revoking partitions any more: free them.
	if len(m.Revoking) > 0 {
		clear(m.Revoking)
		return g.reconcile(), nil
	}
	return nil, nil
}

// Expire removes members whose deadline passed; it returns them and the
// members whose assignment changed.
func (g *Group) Expire(now time.Time) (expired, changed []string) {
	for _, id := range slices.Sorted(maps.Keys(g.Members)) {
		if now.After(g.Members[id].Deadline) {
			expired = append(expired, id)
			delete(g.Members, id)
			delete(g.Target, id)
		}
	}
	if len(expired) == 0 {
		return nil, nil
	}
	g.retarget()
	return expired, g.reconcile()
}

// SetTopics updates the cluster's topics (name -> partition count) and
// rebalances if a subscribed topic appeared, vanished or grew.
func (g *Group) SetTopics(topics map[string]int32) []string {
	before := g.subscribedPartitions(g.topics)
	g.topics = topics
	if maps.Equal(before, g.subscribedPartitions(topics)) {
		return nil
	}
	g.retarget()
	return g.reconcile()
}

// subscribedPartitions is the partition count of every topic some member
// subscribes to.
func (g *Group) subscribedPartitions(topics map[string]int32) map[string]int32 {
	out := map[string]int32{}
	for t, n := range topics {
		for _, m := range g.Members {
			if m.sub.matches(t) {
				out[t] = n
				break
			}
		}
	}
	return out
}

// retarget bumps the group epoch and recomputes the target assignment.
func (g *Group) retarget() {
	g.Epoch++
	in := assignInput{subscribed: map[string]map[string]bool{}, partitions: g.subscribedPartitions(g.topics), current: g.Target}
	in.members = slices.Sorted(maps.Keys(g.Members))
	for _, id := range in.members {
		s := map[string]bool{}
		for t := range in.partitions {
			if g.Members[id].sub.matches(t) {
				s[t] = true
			}
		}
		in.subscribed[id] = s
	}
	g.Target = assign(g.Assignor, in)
}

// reconcile moves every member toward its target, one safe step at a
// time, and returns the members whose assignment changed:
//   - a member with partitions to give up gets them as revoking (its
//     other partitions untouched); it keeps them until it confirms;
//   - a member with nothing to give up gets the target partitions no one
//     else owns (assigned or revoking), and a new epoch;
//   - members that are not connected give up revoked partitions at once.
//
// So a partition never has two owners, and a partition is only ever
// handed over after its previous owner confirmed (or left).
func (g *Group) reconcile() []string {
	owner := map[TP]string{}
	for id, m := range g.Members {
		for tp := range m.Assigned {
			owner[tp] = id
		}
		for tp := range m.Revoking {
			owner[tp] = id
		}
	}
	var changed []string
	ids := slices.Sorted(maps.Keys(g.Members))
	for progress := true; progress; {
		progress = false
		for _, id := range ids {
			m := g.Members[id]
			if len(m.Revoking) > 0 {
				continue
			}
			target := g.Target[id]
			var revoke []TP
			for tp := range m.Assigned {
				if !target[tp] {
					revoke = append(revoke, tp)
				}
			}
			if len(revoke) > 0 {
				for _, tp := range revoke {
					delete(m.Assigned, tp)
					if m.Connected {
						m.Revoking[tp] = m.Epoch
					} else {
						delete(owner, tp)
					}
				}
				changed = union(changed, []string{id})
				progress = true
				continue
			}
			var add []TP
			for tp := range target {
				if _, taken := owner[tp]; !taken {
					add = append(add, tp)
				}
			}
			if len(add) > 0 {
				m.Epoch++
				for _, tp := range add {
					m.Assigned[tp] = m.Epoch
					owner[tp] = id
				}
				changed = union(changed, []string{id})
				progress = true
			}
		}
	}
	return changed
}

// CheckCommit validates a commit by a member: the member must exist, and
// own every partition since an epoch no later than the one sent. An empty
// member id commits from outside the group, allowed only while it is
// empty.
func (g *Group) CheckCommit(id string, epoch int32, tps []TP) error {
	if id == "" {
		if len(g.Members) > 0 {
			return ErrGroupNotEmpty
		}
		return nil
	}
	m, err := g.member(id)
	if err != nil {
		return err
	}
	if epoch > m.Epoch {
		return &StaleEpochError{Member: id, Epoch: epoch, CurrentEpoch: m.Epoch, Reason: "epoch from the future"}
	}
	for _, tp := range tps {
		since, ok := m.owns(tp)
		if !ok {
			return &StaleEpochError{Member: id, Epoch: epoch, CurrentEpoch: m.Epoch,
				Reason: "partition " + tp.Topic + "/" + itoa(tp.Partition) + " is not assigned to the member"}
		}
		if epoch < since {
			return &StaleEpochError{Member: id, Epoch: epoch, CurrentEpoch: m.Epoch,
				Reason: "partition " + tp.Topic + "/" + itoa(tp.Partition) + " was assigned at a later epoch"}
		}
	}
	return nil
}

// union appends to a the ids of b not in a.
func union(a, b []string) []string {
	for _, x := range b {
		if !slices.Contains(a, x) {
			a = append(a, x)
		}
	}
	return a
}
