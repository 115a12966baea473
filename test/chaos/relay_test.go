package chaos

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// relay forwards TCP connections from a listener to one upstream address, dialing
// from a fixed local address. While held, it forwards nothing: bytes already read
// wait and new connections are not dialed upstream, as with packets dropped by a
// firewall and later retransmitted. Release lets them through again.
type relay struct {
	ln       net.Listener
	upstream string
	dialer   net.Dialer

	ctx    context.Context // cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's copiers

	waiting atomic.Int64 // copies and dials waiting at the gate, for the log

	mu struct {
		sync.Mutex
		held  bool
		open  chan struct{} // closed while not held
		conns map[net.Conn]struct{}
	}
}

// newRelay listens on listen and forwards to upstream, dialing from localIP.
func newRelay(listen, upstream, localIP string) (*relay, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, upstream: upstream}
	r.dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.mu.open = make(chan struct{})
	close(r.mu.open)
	r.mu.conns = map[net.Conn]struct{}{}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *relay) addr() string { return r.ln.Addr().String() }

// hold stops forwarding until release.
func (r *relay) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.mu.held {
		r.mu.held = true
		r.mu.open = make(chan struct{})
	}
}

// release forwards again, including what waited.
func (r *relay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.held {
		r.mu.held = false
		close(r.mu.open)
	}
}

// gate waits until the relay is not held; false once the relay is closed.
func (r *relay) gate() bool {
	r.mu.Lock()
	open := r.mu.open
	r.mu.Unlock()
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	select {
	case <-open:
		return true
	case <-r.ctx.Done():
		return false
	}
}

func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx.Err() != nil {
		return false
	}
	r.mu.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.mu.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.track(c) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go r.serve(c)
	}
}

// serve dials upstream once the relay is open and copies both ways.
func (r *relay) serve(down net.Conn) {
	defer r.wg.Done()
	defer r.untrack(down)
	if !r.gate() {
		return
	}
	up, err := r.dialer.DialContext(r.ctx, "tcp", r.upstream)
	if err != nil {
		return
	}
	if !r.track(up) {
		up.Close()
		return
	}
	defer r.untrack(up)
	done := make(chan struct{}, 2)
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.copy(up, down); done <- struct{}{} }()
	go func() { defer r.wg.Done(); r.copy(down, up); done <- struct{}{} }()
	<-done // one side ended: end both
	up.Close()
	down.Close()
	<-done
}

// copy moves bytes from src to dst, waiting at the gate before each write.
func (r *relay) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !r.gate() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or a closed connection: serve ends both sides
			return
		}
	}
}

// close stops the relay and every connection, and waits for its goroutines.
func (r *relay) close() {
	r.cancel()
	r.ln.Close()
	r.mu.Lock()
	for c := range r.mu.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
