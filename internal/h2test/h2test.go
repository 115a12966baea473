package h2test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"golang.org/x/net/http2"
)

// Recorder keeps the bytes its dialer's connections write and read. Use
// Dialer with grpc.WithContextDialer.
type Recorder struct {
	mu    sync.Mutex
	conns []*recordedConn
}

// Dialer dials TCP and records the connection.
func (r *Recorder) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		rc := &recordedConn{Conn: c}
		r.mu.Lock()
		r.conns = append(r.conns, rc)
		r.mu.Unlock()
		return rc, nil
	}
}

// Pings counts the PING frames that are not acks on every recorded
// connection so far: sent by the clients, and received from the servers.
func (r *Recorder) Pings() (sent, received int, err error) {
	r.mu.Lock()
	conns := append([]*recordedConn(nil), r.conns...)
	r.mu.Unlock()
	for _, c := range conns {
		out, in := c.bytes()
		if len(out) == 0 {
			continue // dialed; gRPC has not written its preface yet
		}
		if len(out) < len(http2.ClientPreface) || string(out[:len(http2.ClientPreface)]) != http2.ClientPreface {
			return 0, 0, errors.New("h2test: a connection did not start with the HTTP/2 client preface")
		}
		n, err := pings(out[len(http2.ClientPreface):])
		if err != nil {
			return 0, 0, err
		}
		m, err := pings(in)
		if err != nil {
			return 0, 0, err
		}
		sent += n
		received += m
	}
	return sent, received, nil
}

// pings counts the PING frames that are not acks in b, a sequence of
// frames; a frame cut off at the end (still in flight) is ignored.
func pings(b []byte) (int, error) {
	fr := http2.NewFramer(io.Discard, bytes.NewReader(b))
	n := 0
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			n++
		}
	}
}

type recordedConn struct {
	net.Conn
	mu      sync.Mutex
	out, in bytes.Buffer
}

func (c *recordedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.keep(&c.out, p[:n])
	return n, err
}

func (c *recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.keep(&c.in, p[:n])
	return n, err
}

func (c *recordedConn) keep(b *bytes.Buffer, p []byte) {
	c.mu.Lock()
	b.Write(p)
	c.mu.Unlock()
}

func (c *recordedConn) bytes() (out, in []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes()), bytes.Clone(c.in.Bytes())
}
