package coordinator

import (
	"errors"
	"fmt"
)

// Sentinel errors of the coordinator; server/ maps them to API reasons.
var (
	// ErrUnknownGroup: the group does not exist (no members, no offsets).
	ErrUnknownGroup = errors.New("coordinator: unknown group")
	// ErrUnknownMember: the member id is not (or no longer) in the group;
	// it left, timed out or was replaced. Rejoin.
	ErrUnknownMember = errors.New("coordinator: unknown member")
	// ErrGroupNotEmpty: the operation needs a group without members.
	ErrGroupNotEmpty = errors.New("coordinator: group has members")
	// ErrInvalid: the request is malformed (see the wrapped message).
	ErrInvalid = errors.New("coordinator: invalid request")
	// ErrClosed: the coordinator is closed.
	ErrClosed = errors.New("coordinator: closed")
	// ErrFenced: another stream took over this member (a static member
	// rejoined with the same instance id, or the member rejoined).
	ErrFenced = errors.New("coordinator: member replaced by a newer stream")
	// ErrLoading: this node leads the group's partition but is still
	// rebuilding the groups from it; retry shortly.
	ErrLoading = errors.New("coordinator: loading group state")
)

// StaleEpochError rejects a request sent with a member epoch the member no
// longer has for what it asks about.
type StaleEpochError struct {
	Member       string
	Epoch        int32 // the epoch in the request
	CurrentEpoch int32
	Reason       string
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("coordinator: stale member epoch %d for member %s (current %d): %s", e.Epoch, e.Member, e.CurrentEpoch, e.Reason)
}

// NotCoordinatorError: this node does not lead the group's partition of
// __consumer_offsets. Leader is the node that does (0 = unknown).
type NotCoordinatorError struct {
	Group  string
	Leader uint64
}

func (e *NotCoordinatorError) Error() string {
	if e.Leader == 0 {
		return fmt.Sprintf("coordinator: not the coordinator of group %q (coordinator unknown)", e.Group)
	}
	return fmt.Sprintf("coordinator: not the coordinator of group %q (node %d is)", e.Group, e.Leader)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
