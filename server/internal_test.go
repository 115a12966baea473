package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPanicBecomesInternalWithoutStack(t *testing.T) {
	var logged strings.Builder
	l := slog.New(slog.NewTextHandler(&logged, nil))
	ic := recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(recoveryHandler(l)))
	_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		panic("boom")
	})
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "boom") || strings.Contains(st.Message(), "goroutine") {
		t.Fatalf("client sees %v", st)
	}
	var reason string
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			reason = ei.GetReason()
		}
	}
	if reason != "INTERNAL" {
		t.Fatalf("reason %q", reason)
	}
	if !strings.Contains(logged.String(), "boom") || !strings.Contains(logged.String(), "stack") {
		t.Fatalf("the log lacks the panic: %s", logged.String())
	}
}

func TestConfigValidate(t *testing.T) {
	q := Config{NodeID: 2, ControllerQuorum: []string{"1@127.0.0.1:1", "2@127.0.0.1:2", "3@127.0.0.1:3"}}
	if err := q.Validate(); err != nil || len(q.ControllerVoters) != 3 {
		t.Fatalf("quorum: %v %v", q.ControllerVoters, err)
	}
	j := Config{NodeID: 4, Join: []string{"127.0.0.1:9701"}}
	if err := j.Validate(); err != nil {
		t.Fatalf("join: %v", err)
	}
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.ListenAddr != d.ListenAddr || c.DataDir != "./data" || c.HTTPListenAddr != "127.0.0.1:9702" || c.NodeID != 1 || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
	for _, bad := range []Config{
		{ListenAddr: "nope"},
		{HTTPListenAddr: "1.2.3.4"},
		{DefaultPartitions: -1},
		{NodeID: 1 << 40},
		{Join: []string{"127.0.0.1"}},
		{NodeID: 1, Join: []string{"127.0.0.1:9711"}, ControllerQuorum: []string{"1@127.0.0.1:1", "2@127.0.0.1:2"}},
		{ControllerQuorum: []string{"one@127.0.0.1:9701"}},
		{ControllerQuorum: []string{"1@127.0.0.1"}},
		{ControllerQuorum: []string{"1@127.0.0.1:1", "1@127.0.0.1:2"}},
		{NodeID: 4, ControllerQuorum: []string{"1@127.0.0.1:1", "2@127.0.0.1:2"}},
		{ControllerVoters: []uint64{1, 2}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
}

func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if err := b.acquire(ctx, 40); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.acquire(short, 1); err == nil {
		t.Fatal("acquired beyond the budget")
	}
	done := make(chan error, 1)
	go func() { done <- b.acquire(ctx, 50) }()
	b.release(60)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.release(40)
	b.release(50)
	if err := b.acquire(ctx, 500); err != nil { // larger than the budget, alone
		t.Fatal(err)
	}
}

func TestContextErrorsGetTheirCodes(t *testing.T) {
	apiErr := status.Error(codes.Unavailable, "not now")
	plain := errors.New("plain")
	for _, tc := range []struct {
		err  error
		want codes.Code
		same bool // returned as is
	}{
		{context.Canceled, codes.Canceled, false},
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), codes.DeadlineExceeded, false},
		{apiErr, codes.Unavailable, true},
		{plain, codes.Unknown, true},
		{nil, codes.OK, true},
	} {
		_, err := contextCodeUnary(context.Background(), nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) {
			return nil, tc.err
		})
		if got := status.Code(err); got != tc.want {
			t.Errorf("%v: code %v, want %v", tc.err, got, tc.want)
		}
		if tc.same && err != tc.err {
			t.Errorf("%v: rewritten as %v", tc.err, err)
		}
		serr := contextCodeStream(nil, nil, &grpc.StreamServerInfo{}, func(any, grpc.ServerStream) error { return tc.err })
		if got := status.Code(serr); got != tc.want {
			t.Errorf("stream %v: code %v, want %v", tc.err, got, tc.want)
		}
	}
}
