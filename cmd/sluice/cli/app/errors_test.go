package app

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func withReason(c codes.Code, msg, reason string, meta map[string]string) error {
	st, err := status.New(c, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "sluice.v1", Metadata: meta})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{withReason(codes.NotFound, `topic "x" does not exist`, "UNKNOWN_TOPIC", nil), `topic "x" does not exist (UNKNOWN_TOPIC)`},
		{Wrap(withReason(codes.AlreadyExists, `topic "x" exists`, "TOPIC_EXISTS", nil), "create %q", "x"), `create "x": topic "x" exists (TOPIC_EXISTS)`},
		{withReason(codes.OutOfRange, "offset 9 out of range", "OFFSET_OUT_OF_RANGE", map[string]string{"latest": "5", "earliest": "0"}), "offset 9 out of range (OFFSET_OUT_OF_RANGE)"},
		{status.Error(codes.Unavailable, "connection refused"), "cannot reach the cluster at B: connection refused (UNAVAILABLE)"},
		{status.Error(codes.Internal, "boom"), "boom (Internal)"},
		{context.DeadlineExceeded, "timed out (raise --timeout)"},
		{errors.New("plain"), "plain"},
		{&clients.Error{Code: codes.NotFound, Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC, Message: `topic "y" does not exist`}, `topic "y" does not exist (UNKNOWN_TOPIC)`},
	} {
		if got := Describe(tc.err, "B"); got != tc.want {
			t.Errorf("Describe(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if Reason(withReason(codes.NotFound, "m", "UNKNOWN_TOPIC", nil)) != "UNKNOWN_TOPIC" || Reason(errors.New("x")) != "" {
		t.Error("Reason")
	}
}

func TestParseTime(t *testing.T) {
	for _, bad := range []string{"", "yesterday", "-x"} {
		if _, err := ParseTime(bad, time.Time{}); err == nil || !strings.Contains(err.Error(), "not a time") {
			t.Errorf("ParseTime(%q): %v", bad, err)
		}
	}
}
