package server

import "context"

// receive forwards a stream's incoming messages to a channel, so a handler can
// select on them together with its other events. The goroutine ends when Recv
// fails — the client half-closed the stream (io.EOF) or the call ended, which
// also happens when the handler returns — and the error is delivered once; it
// also ends when ctx ends while a message waits to be taken.
func receive[T any](ctx context.Context, recv func() (T, error)) (<-chan T, <-chan error) {
	msgs := make(chan T)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return msgs, errc
}
