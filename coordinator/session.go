package coordinator

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// Assignment is what a member is told: its partitions, those it must give
// up, and its epoch.
type Assignment struct {
	MemberID          string
	Epoch             int32
	Assigned          []TP
	Revoking          []TP
	HeartbeatInterval time.Duration
}

func assignmentOf(m *Member) Assignment {
	return Assignment{MemberID: m.ID, Epoch: m.Epoch, HeartbeatInterval: heartbeatInterval(m.SessionTimeout),
		Assigned: sortTPs(slices.Collect(maps.Keys(m.Assigned))), Revoking: sortTPs(slices.Collect(maps.Keys(m.Revoking)))}
}

// Session is one member's attachment to its group: the server side of a
// Membership stream (or of a Consume stream in group mode). The latest
// assignment waits in the session until taken; older ones are dropped
// (each is the full state).
type Session struct {
	shard  *shard
	group  string
	member string

	mu struct {
		sync.Mutex
		pending *Assignment
		err     error
	}
	notify chan struct{} // capacity 1: an assignment is pending
	done   chan struct{} // closed when the session ends
}

// MemberID is the member this session speaks for.
func (s *Session) MemberID() string { return s.member }

// Notify signals that Next has an assignment.
func (s *Session) Notify() <-chan struct{} { return s.notify }

// Done is closed when the session ended (fenced, expelled, coordinator
// moved or closed); Err says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended, nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err
}

// Next takes the pending assignment, if any.
func (s *Session) Next() (Assignment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pending == nil {
		return Assignment{}, false
	}
	a := *s.mu.pending
	s.mu.pending = nil
	return a, true
}

func (s *Session) publish(a Assignment) {
	s.mu.Lock()
	if s.mu.err == nil {
		s.mu.pending = &a
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Session) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.err != nil {
		return
	}
	s.mu.err = err
	close(s.done)
}

// do runs f on the session's group under the shard lock, persisting and
// publishing the members it changed.
func (s *Session) do(ctx context.Context, f func(g *Group, now time.Time) ([]string, error)) error {
	sh := s.shard
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if err := s.Err(); err != nil {
		return err
	}
	if err := sh.checkLocked(); err != nil {
		return err
	}
	g, err := sh.groupLocked(s.group, false)
	if err != nil {
		return err
	}
	changed, err := f(g, sh.c.cfg.Now())
	if err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	return sh.persistLocked(ctx, g, changed)
}

// Heartbeat keeps the member alive.
func (s *Session) Heartbeat(ctx context.Context, epoch int32) error {
	return s.do(ctx, func(g *Group, now time.Time) ([]string, error) {
		return nil, g.Heartbeat(s.member, epoch, now)
	})
}

// Confirm confirms the revocation sent with epoch.
func (s *Session) Confirm(ctx context.Context, epoch int32) error {
	return s.do(ctx, func(g *Group, now time.Time) ([]string, error) {
		return g.Confirm(s.member, epoch, now)
	})
}

// UpdateSubscription changes the member's subscription.
func (s *Session) UpdateSubscription(ctx context.Context, sub Subscription) error {
	return s.do(ctx, func(g *Group, now time.Time) ([]string, error) {
		return g.UpdateSubscription(s.member, sub, now)
	})
}

// Close detaches the stream: a dynamic member leaves the group, a static
// one keeps its place until its session times out.
func (s *Session) Close(ctx context.Context) error {
	sh := s.shard
	sh.mu.Lock()
	if sh.mu.sessions[s.group][s.member] == s {
		delete(sh.mu.sessions[s.group], s.member)
	}
	sh.mu.Unlock()
	err := s.do(ctx, func(g *Group, now time.Time) ([]string, error) {
		return g.Disconnect(s.member, now)
	})
	s.end(ErrClosed)
	return err
}
