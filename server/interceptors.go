package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// slogLogger adapts slog to the middleware's logging.Logger.
func slogLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// loggingOptions log finished calls; OK calls at debug level so a busy
// node does not flood its log.
func loggingOptions() []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(func(c codes.Code) logging.Level {
			switch c {
			case codes.OK, codes.Canceled, codes.NotFound, codes.AlreadyExists, codes.InvalidArgument,
				codes.OutOfRange, codes.FailedPrecondition, codes.Unimplemented, codes.DeadlineExceeded:
				return logging.LevelDebug
			case codes.Internal, codes.Unknown, codes.DataLoss:
				return logging.LevelError
			default:
				return logging.LevelWarn
			}
		}),
	}
}

// recoveryHandler logs a handler panic with its stack and answers INTERNAL
// with an ErrorInfo; the client never sees the stack.
func recoveryHandler(l *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, p any) error {
		l.ErrorContext(ctx, "panic in request handler", "panic", p, "stack", string(debug.Stack()))
		return internalError()
	}
}

// contextCodeUnary and contextCodeStream give a raw context error that a
// handler returns its gRPC code (Canceled, DeadlineExceeded). Without one,
// gRPC, the request metrics and the log would report a client that went
// away, or a deadline that passed, as an Unknown failure of the node.
func contextCodeUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, contextStatus(err)
}

func contextCodeStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return contextStatus(handler(srv, ss))
}

func contextStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return err
}

// validationUnary rejects invalid requests before they reach a handler.
func validationUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := validateRequest(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// validationStream validates every message a client sends on a stream.
func validationStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &validatingStream{ServerStream: ss})
}

type validatingStream struct{ grpc.ServerStream }

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return validateRequest(m)
}
