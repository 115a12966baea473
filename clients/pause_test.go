package clients_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
)

// freezer is a TCP relay in front of one node that can stop passing bytes while keeping
// its connections open: to the client, the node looks like a paused process (SIGSTOP).
type freezer struct {
	lis    net.Listener
	target string
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		frozen bool
		thaw   chan struct{} // closed when unfrozen
		conns  []net.Conn
		closed bool
	}
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fz := &freezer{lis: lis, target: target}
	fz.mu.thaw = make(chan struct{})
	close(fz.mu.thaw)
	fz.wg.Add(1)
	go fz.accept()
	t.Cleanup(fz.close)
	return fz
}

func (fz *freezer) addr() string { return fz.lis.Addr().String() }

func (fz *freezer) accept() {
	defer fz.wg.Done()
	for {
		c, err := fz.lis.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", fz.target)
		if err != nil {
			c.Close()
			continue
		}
		fz.mu.Lock()
		if fz.mu.closed {
			fz.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		fz.mu.conns = append(fz.mu.conns, c, up)
		fz.mu.Unlock()
		fz.wg.Add(2)
		go fz.pipe(up, c)
		go fz.pipe(c, up)
	}
}

// pipe copies src to dst, holding each chunk while frozen.
func (fz *freezer) pipe(dst, src net.Conn) {
	defer fz.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			fz.mu.Lock()
			thaw, closed := fz.mu.thaw, fz.mu.closed
			fz.mu.Unlock()
			if closed {
				return
			}
			<-thaw
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

func (fz *freezer) freeze() {
	fz.mu.Lock()
	defer fz.mu.Unlock()
	if !fz.mu.frozen {
		fz.mu.frozen = true
		fz.mu.thaw = make(chan struct{})
	}
}

func (fz *freezer) unfreeze() {
	fz.mu.Lock()
	defer fz.mu.Unlock()
	if fz.mu.frozen {
		fz.mu.frozen = false
		close(fz.mu.thaw)
	}
}

func (fz *freezer) close() {
	fz.lis.Close()
	fz.mu.Lock()
	fz.mu.closed = true
	for _, c := range fz.mu.conns {
		c.Close()
	}
	fz.mu.Unlock()
	fz.unfreeze()
	fz.wg.Wait()
}

// A leader that stops answering while its connection stays open (a paused process)
// must not hold the batches in flight on it: after the request timeout they are
// retried, as an unknown outcome, on the leader the refreshed metadata names.
func TestPausedLeaderRequestTimesOut(t *testing.T) {
	f := newFake(t, 2)
	fz := newFreezer(t, f.nodes[0].addr)
	f.mu.Lock()
	f.nodes[0].addr = fz.addr() // node 1 is known (and reached) through the relay
	f.mu.Unlock()
	f.addTopic("t", 1, 1)
	p := newProducer(t, f, clients.ManualPartitioning(), clients.Linger(0), clients.RequestTimeout(time.Second))
	ctx := guard(t)
	if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("a")}).First(); err != nil {
		t.Fatal(err)
	}
	fz.freeze()
	defer fz.unfreeze()
	f.setLeader("t", 0, 2)

	type result struct {
		r   *clients.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("b")}).First()
		done <- result{r, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		fz.unfreeze() // let the producer finish so that the test ends
		t.Fatal("the produce is still waiting on the paused leader")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	log := f.log("t", 0)
	if res.r.Offset != 1 || len(log) != 2 || log[1].node != 2 {
		t.Fatalf("offset %d, %d batches, last on node %d", res.r.Offset, len(log), log[len(log)-1].node)
	}
}

// The same with unary Produce calls: each call is bounded by the request timeout.
func TestPausedLeaderUnaryRequestTimesOut(t *testing.T) {
	f := newFake(t, 2)
	fz := newFreezer(t, f.nodes[0].addr)
	f.mu.Lock()
	f.nodes[0].addr = fz.addr()
	f.mu.Unlock()
	f.addTopic("t", 1, 1)
	p := newProducer(t, f, clients.ManualPartitioning(), clients.Linger(0), clients.RequestTimeout(time.Second), clients.UnaryProduce())
	ctx := guard(t)
	if _, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("a")}).First(); err != nil {
		t.Fatal(err)
	}
	fz.freeze()
	defer fz.unfreeze()
	f.setLeader("t", 0, 2)
	done := make(chan error, 1)
	go func() {
		_, err := p.ProduceSync(ctx, &clients.Record{Topic: "t", Value: []byte("b")}).First()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		fz.unfreeze()
		t.Fatal("the produce is still waiting on the paused leader")
	}
	if log := f.log("t", 0); len(log) != 2 || log[1].node != 2 {
		t.Fatalf("%d batches, last on node %d", len(log), log[len(log)-1].node)
	}
}
