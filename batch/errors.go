package batch

import (
	"errors"
	"fmt"
)

// ErrCorrupt reports a batch whose bytes cannot be trusted: a CRC mismatch, a record
// count that disagrees with the records found, undecodable compressed data or records
// that are not well-formed protobuf of sluicev1.Record.
var ErrCorrupt = errors.New("batch: corrupt")

// ErrInvalid reports a batch that is well-formed but not acceptable: a field set that a
// producer must not set, an unknown codec, a negative timestamp. The concrete error is an
// *InvalidError naming the field.
var ErrInvalid = errors.New("batch: invalid")

// InvalidError is an ErrInvalid that names the RecordBatch field at fault.
type InvalidError struct {
	Field string // RecordBatch field name, e.g. "base_offset"
	Msg   string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("batch: invalid %s: %s", e.Field, e.Msg) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// TooLargeError reports a batch over a size limit: its stored size over Limits.MaxBytes,
// or (Decompressed) its records over the decompression bound.
type TooLargeError struct {
	Size         int // bytes found (for Decompressed, at least this many)
	Max          int // the limit
	Decompressed bool
}

func (e *TooLargeError) Error() string {
	if e.Decompressed {
		return fmt.Sprintf("batch: decompressed records exceed %d bytes", e.Max)
	}
	return fmt.Sprintf("batch: %d bytes exceeds the limit of %d", e.Size, e.Max)
}
