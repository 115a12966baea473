package storage

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by every method of a closed Log or SyncGroup.
	ErrClosed = errors.New("storage: log closed")
	// ErrFailed marks the error returned by every write after the log has
	// failed (an fsync or write error). The original cause is wrapped too:
	// errors.Is(err, ErrFailed) and errors.Is(err, cause) both hold.
	ErrFailed = errors.New("storage: log failed, refusing writes")
	// ErrCorrupt marks a frame, index or state file whose bytes do not
	// check out. See *CorruptionError for the location.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrNotContiguous is returned by Append when entries have gaps or start
	// after LastIndex()+1.
	ErrNotContiguous = errors.New("storage: entries not contiguous with the log")
	// ErrOutOfBounds is returned for an index beyond LastIndex() where the
	// Raft contract forbids it (MemoryStorage panics in these cases).
	ErrOutOfBounds = errors.New("storage: index out of bounds")
)

// OffsetOutOfRangeError is returned by Read when the offset is below the log
// start offset or above the next offset. Start and End are the valid range
// [Start, End] at the time of the call (End = NextOffset, readable but empty).
type OffsetOutOfRangeError struct {
	Offset     uint64
	Start, End uint64
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("storage: offset %d out of range [%d, %d]", e.Offset, e.Start, e.End)
}

// CorruptionError locates a corrupt frame or file. It matches ErrCorrupt
// with errors.Is.
type CorruptionError struct {
	File   string // path of the damaged file
	Pos    int64  // byte position of the damaged frame or entry
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("storage: corrupt data in %s at byte %d: %s", e.File, e.Pos, e.Reason)
}

// Is reports ErrCorrupt.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// failedError wraps the first write/fsync error of a failed log.
type failedError struct{ cause error }

func (e *failedError) Error() string {
	return "storage: log failed, refusing writes: " + e.cause.Error()
}
func (e *failedError) Unwrap() []error { return []error{ErrFailed, e.cause} }
