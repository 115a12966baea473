package replication

import (
	"errors"
	"fmt"
)

// NotLeaderError reports that this replica is not the leader of the
// partition. The request was definitely not proposed: retrying it elsewhere
// cannot create a duplicate. Leader is the current leader's node id, or 0
// when no leader is known.
type NotLeaderError struct {
	Leader uint64
}

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "replication: not the leader (leader unknown)"
	}
	return fmt.Sprintf("replication: not the leader (leader is node %d)", e.Leader)
}

var (
	// ErrClosed is returned by operations on a closed host or partition.
	ErrClosed = errors.New("replication: closed")

	// ErrUnknownOutcome is returned when a request was proposed but its
	// fate is unknown to this replica: leadership moved, the context ended or
	// the replica was closed before the entry applied. The entry may or may
	// not be in the log; only an idempotent producer can retry safely.
	ErrUnknownOutcome = errors.New("replication: proposed, outcome unknown")

	// ErrOutOfOrderSequence rejects an idempotent batch whose base sequence
	// does not follow the producer's last sequence. Nothing was written.
	ErrOutOfOrderSequence = errors.New("replication: out of order sequence number")

	// ErrProducerFenced rejects a batch whose producer epoch is older than
	// the epoch the partition has already seen for that producer id.
	ErrProducerFenced = errors.New("replication: producer epoch fenced")

	// ErrInvalidBatch rejects a batch with inconsistent metadata (no
	// records, an empty payload, or a sequence that overflows).
	ErrInvalidBatch = errors.New("replication: invalid batch")

	// ErrLogFailed is returned after the partition's log failed (for
	// example an fsync error): the replica stops accepting writes.
	ErrLogFailed = errors.New("replication: log failed")

	// ErrThrottled rejects a write while the leader holds too many
	// uncommitted bytes (followers or the disk fall behind). Nothing was
	// written; retry after a backoff.
	ErrThrottled = errors.New("replication: too many uncommitted entries, retry later")

	// ErrPartitionExists is returned by OpenPartition when the group id is
	// open with a different directory.
	ErrPartitionExists = errors.New("replication: partition open with another spec")
)
