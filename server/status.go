package server

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// errorDomain is the ErrorInfo domain of every error Sluice returns.
const errorDomain = "sluice.v1"

// reasonName is the ErrorInfo reason for r: its enum name without the
// ERROR_REASON_ prefix ("UNKNOWN_TOPIC").
func reasonName(r sluicev1.ErrorReason) string {
	return strings.TrimPrefix(r.String(), "ERROR_REASON_")
}

// apiError is a failure as the API reports it: a gRPC code, a reason and
// its metadata. It converts both to a call status (GRPCStatus) and to the
// in-stream sluicev1.Error.
type apiError struct {
	code   codes.Code
	reason sluicev1.ErrorReason
	msg    string
	md     map[string]string
}

func (e *apiError) Error() string { return e.msg }

// GRPCStatus makes status.FromError and the gRPC server see the code and
// an ErrorInfo detail.
func (e *apiError) GRPCStatus() *status.Status {
	st := status.New(e.code, e.msg)
	if ds, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reasonName(e.reason), Domain: errorDomain, Metadata: e.md}); err == nil {
		return ds
	}
	return st
}

// proto is the in-stream form of the error.
func (e *apiError) proto() *sluicev1.Error {
	return &sluicev1.Error{Code: int32(e.code), Reason: e.reason, Message: e.msg, Metadata: e.md}
}

func newAPIError(code codes.Code, reason sluicev1.ErrorReason, md map[string]string, format string, args ...any) *apiError {
	return &apiError{code: code, reason: reason, msg: fmt.Sprintf(format, args...), md: md}
}

// invalidField reports a missing or invalid request field.
func invalidField(field, format string, args ...any) *apiError {
	return newAPIError(codes.InvalidArgument, sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST,
		map[string]string{"field": field}, "invalid %s: %s", field, fmt.Sprintf(format, args...))
}

// unsupported answers an operation this server version does not offer.
func unsupported(what string) *apiError {
	return newAPIError(codes.Unimplemented, sluicev1.ErrorReason_ERROR_REASON_UNSUPPORTED, nil,
		"%s is not supported by this server yet", what)
}

// internalError hides the cause from the client; the caller logs it.
func internalError() *apiError {
	return newAPIError(codes.Internal, sluicev1.ErrorReason_ERROR_REASON_INTERNAL, nil,
		"internal error; see the server log")
}
