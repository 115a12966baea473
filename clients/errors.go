package clients

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of Sluice's errors.
const ErrorDomain = "sluice.v1"

// Error is a failure reported by a Sluice server: the gRPC status code, the
// machine-readable reason from its google.rpc.ErrorInfo (or a stream's Error message) and
// the reason's metadata. Programs decide on Reason (and Metadata), never on Message.
type Error struct {
	Code     codes.Code
	Reason   sluicev1.ErrorReason
	Message  string
	Metadata map[string]string
}

func (e *Error) Error() string {
	reason := strings.TrimPrefix(e.Reason.String(), "ERROR_REASON_")
	if e.Reason == sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		reason = e.Code.String()
	}
	if e.Message == "" {
		return "sluice: " + reason
	}
	return fmt.Sprintf("sluice: %s: %s", reason, e.Message)
}

// Is matches errors of the same reason, so errors.Is(err, clients.ErrUnknownTopic) holds
// for any UNKNOWN_TOPIC error. A target with an unspecified reason matches on the code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t.Reason != sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		return t.Reason == e.Reason
	}
	return t.Code == e.Code && e.Reason == sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

func reasonErr(r sluicev1.ErrorReason) *Error { return &Error{Reason: r} }

// Sentinels for errors.Is. They match on the reason only.
var (
	ErrUnknownTopic       = reasonErr(sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC)
	ErrUnknownPartition   = reasonErr(sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION)
	ErrTopicExists        = reasonErr(sluicev1.ErrorReason_ERROR_REASON_TOPIC_EXISTS)
	ErrInvalidRequest     = reasonErr(sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST)
	ErrInvalidConfig      = reasonErr(sluicev1.ErrorReason_ERROR_REASON_INVALID_CONFIG)
	ErrBatchTooLarge      = reasonErr(sluicev1.ErrorReason_ERROR_REASON_BATCH_TOO_LARGE)
	ErrCorruptBatch       = reasonErr(sluicev1.ErrorReason_ERROR_REASON_CORRUPT_BATCH)
	ErrOffsetOutOfRange   = reasonErr(sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE)
	ErrNotLeader          = reasonErr(sluicev1.ErrorReason_ERROR_REASON_NOT_LEADER)
	ErrLeaderNotAvailable = reasonErr(sluicev1.ErrorReason_ERROR_REASON_LEADER_NOT_AVAILABLE)
	ErrNotWritten         = reasonErr(sluicev1.ErrorReason_ERROR_REASON_NOT_WRITTEN)
	ErrUnknownOutcome     = reasonErr(sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_OUTCOME)
	ErrOutOfOrderSequence = reasonErr(sluicev1.ErrorReason_ERROR_REASON_OUT_OF_ORDER_SEQUENCE)
	ErrProducerFenced     = reasonErr(sluicev1.ErrorReason_ERROR_REASON_PRODUCER_FENCED)
	ErrUnknownProducerID  = reasonErr(sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_PRODUCER_ID)
	ErrNodeUnavailable    = reasonErr(sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE)
	ErrUnsupported        = reasonErr(sluicev1.ErrorReason_ERROR_REASON_UNSUPPORTED)
	ErrNotAuthorized      = reasonErr(sluicev1.ErrorReason_ERROR_REASON_NOT_AUTHORIZED)
	ErrQuotaExceeded      = reasonErr(sluicev1.ErrorReason_ERROR_REASON_QUOTA_EXCEEDED)
	ErrInternal           = reasonErr(sluicev1.ErrorReason_ERROR_REASON_INTERNAL)
)

// ErrClosed is returned for work handed to a closed Producer or Consumer, and given to the
// promises of records still buffered when a Producer closes.
var ErrClosed = errors.New("sluice: client closed")

// AsError returns the *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// ReasonOf returns the reason of the *Error in err's chain, or UNSPECIFIED.
func ReasonOf(err error) sluicev1.ErrorReason {
	if e, ok := AsError(err); ok {
		return e.Reason
	}
	return sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// fromStatus converts a gRPC error into an *Error, reading the reason and metadata from
// its google.rpc.ErrorInfo detail. Errors that are not gRPC statuses pass through.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := AsError(err); ok {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || (info.GetDomain() != ErrorDomain && info.GetDomain() != "") {
			continue
		}
		if v, ok := sluicev1.ErrorReason_value["ERROR_REASON_"+info.GetReason()]; ok {
			e.Reason = sluicev1.ErrorReason(v)
		} else if v, ok := sluicev1.ErrorReason_value[info.GetReason()]; ok {
			e.Reason = sluicev1.ErrorReason(v)
		}
		e.Metadata = info.GetMetadata()
		break
	}
	return e
}

// fromProto converts a stream or per-partition Error message.
func fromProto(pe *sluicev1.Error) error {
	if pe == nil {
		return nil
	}
	return &Error{Code: codes.Code(pe.GetCode()), Reason: pe.GetReason(), Message: pe.GetMessage(), Metadata: pe.GetMetadata()}
}

// retriable reports whether a produce may be sent again after err. UNKNOWN_OUTCOME (and a
// transport failure after sending) only when the producer is idempotent, since a retry
// may otherwise write the batch twice.
func retriable(err error, idempotent bool) bool {
	e, ok := AsError(err)
	if !ok {
		return false
	}
	switch e.Reason {
	case sluicev1.ErrorReason_ERROR_REASON_NOT_LEADER,
		sluicev1.ErrorReason_ERROR_REASON_LEADER_NOT_AVAILABLE,
		sluicev1.ErrorReason_ERROR_REASON_NOT_WRITTEN,
		sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE:
		return true
	case sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_OUTCOME:
		return idempotent
	case sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED:
		// A transport failure with no reason: the request may have reached the server.
		return idempotent && (e.Code == codes.Unavailable || e.Code == codes.DeadlineExceeded)
	}
	return false
}

// IsRetriable reports whether err is a failure that the same request may succeed after
// (a leader change, an unavailable node, a batch that was definitely not written).
// UNKNOWN_OUTCOME is not included: retry it only where duplicates are harmless.
func IsRetriable(err error) bool { return retriable(err, false) }
