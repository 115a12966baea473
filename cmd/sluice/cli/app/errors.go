package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Reason returns the ErrorInfo reason ("UNKNOWN_TOPIC", ...) carried by a gRPC error, or
// "" if it has none.
func Reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// Describe renders an error for a person: the server's message followed by the
// machine-readable reason, e.g. `topic "x" does not exist (UNKNOWN_TOPIC)`. Transport
// failures name the brokers that could not be reached.
func Describe(err error, brokers string) string {
	if err == nil {
		return ""
	}
	var we *wrapped
	prefix := ""
	if errors.As(err, &we) {
		prefix, err = we.prefix+": ", we.err
	}
	if ce, ok := clients.AsError(err); ok {
		reason := strings.TrimPrefix(ce.Reason.String(), "ERROR_REASON_")
		if ce.Reason == sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			if ce.Code == codes.Unavailable {
				return fmt.Sprintf("%scannot reach the cluster at %s: %s (UNAVAILABLE)", prefix, brokers, ce.Message)
			}
			reason = ce.Code.String()
		}
		return fmt.Sprintf("%s%s (%s)", prefix, ce.Message, reason)
	}
	st, ok := status.FromError(err)
	if !ok {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return prefix + "timed out (raise --timeout)"
		case errors.Is(err, context.Canceled):
			return prefix + "interrupted"
		}
		return prefix + err.Error()
	}
	msg := st.Message()
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		if reason == "" {
			return fmt.Sprintf("%scannot reach the cluster at %s: %s (UNAVAILABLE)", prefix, brokers, msg)
		}
	case codes.DeadlineExceeded:
		if reason == "" {
			return prefix + "timed out waiting for the cluster (raise --timeout)"
		}
	case codes.Canceled:
		if reason == "" {
			return prefix + "interrupted"
		}
	}
	if reason == "" {
		reason = st.Code().String()
	}
	return fmt.Sprintf("%s%s (%s)", prefix, msg, reason)
}

// ReasonOf renders a per-item Error from a response (stream and batch APIs report
// failures this way) the same way Describe renders a call's error.
func ReasonOf(e *sluicev1.Error) error {
	if e == nil {
		return nil
	}
	reason := strings.TrimPrefix(e.GetReason().String(), "ERROR_REASON_")
	return fmt.Errorf("%s (%s)", e.GetMessage(), reason)
}

type wrapped struct {
	prefix string
	err    error
}

func (w *wrapped) Error() string { return w.prefix + ": " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// Wrap adds context to an error without hiding its gRPC status from Describe.
func Wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &wrapped{prefix: fmt.Sprintf(format, args...), err: err}
}
