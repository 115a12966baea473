package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Failure guards, never expectations.
const (
	startDeadline = 2 * time.Minute
	settleGuard   = 3 * time.Minute
	callTimeout   = 5 * time.Second
)

// node is one `sluice server` process slot: it keeps its identity, addresses and data
// directory across restarts.
type node struct {
	t        *testing.T
	id       int
	ip       string // 127.0.0.<id>
	addr     string // client API
	internal string // node-to-node listener
	http     string
	dataDir  string
	logPath  string
	quorum   string // --controller-quorum as this node sees it (through the relays)
	extra    []string
	conn     *grpc.ClientConn

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd
		exited chan struct{} // closed when cmd has been waited for
		paused bool
	}
}

// freePort returns a port free on ip right now, below the kernel's
// ephemeral range (32768 and up on Linux): outgoing connections take their
// source ports from that range, so a port picked there (a bind to port 0)
// can be taken by any connection before the node binds it.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	for range 100 {
		port := 10000 + rand.IntN(22000)
		if ln, err := net.Listen("tcp", hostPort(ip, port)); err == nil {
			ln.Close()
			return port
		}
	}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("the cluster needs loopback address %s, which is not usable here: %v", ip, err)
	}
	ln.Close()
	t.Fatalf("no free port below 32000 on %s", ip)
	return 0
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// start runs the process and waits until it reports ready on the expected address.
func (n *node) start() {
	n.t.Helper()
	n.mu.Lock()
	if n.mu.cmd != nil {
		n.mu.Unlock()
		n.t.Fatalf("node %d already running", n.id)
	}
	args := append([]string{"server",
		"--node-id", strconv.Itoa(n.id),
		"--data-dir", n.dataDir,
		"--listen", n.addr,
		"--internal-listen", n.internal,
		"--http-listen", n.http,
		"--controller-quorum", n.quorum,
		"--log-format", "json",
	}, n.extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		n.t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		n.mu.Unlock()
		n.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		n.mu.Unlock()
		n.t.Fatal(err)
	}
	fmt.Fprintf(logf, "### %s start pid %d\n", time.Now().UTC().Format(time.RFC3339Nano), cmd.Process.Pid)
	exited := make(chan struct{})
	n.mu.cmd, n.mu.exited, n.mu.paused = cmd, exited, false
	n.mu.Unlock()

	ready := make(chan string, 1)
	go func() { // owned by the process: ends when it closes stderr, then waits for it
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logf.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "sluice server ready" {
				select {
				case ready <- rec.Addr:
				default:
				}
			}
		}
		err := cmd.Wait()
		fmt.Fprintf(logf, "### %s exit: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
		logf.Close()
		close(exited)
	}()
	select {
	case a := <-ready:
		if a != n.addr {
			n.t.Fatalf("node %d reports its client API at %s, want %s", n.id, a, n.addr)
		}
	case <-exited:
		n.t.Fatalf("node %d exited before it was ready; log %s:\n%s", n.id, n.logPath, tail(n.logPath, 40))
	case <-time.After(startDeadline):
		n.t.Fatalf("node %d not ready after %v; log %s:\n%s", n.id, startDeadline, n.logPath, tail(n.logPath, 40))
	}
}

func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.cmd != nil
}

func (n *node) paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.paused
}

// up: running and not paused.
func (n *node) up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.cmd != nil && !n.mu.paused
}

// kill sends SIGKILL and waits for the process to end.
func (n *node) kill() { n.end(syscall.SIGKILL) }

// stop sends SIGTERM (a graceful shutdown) and waits for the process to end.
func (n *node) stop() { n.end(syscall.SIGTERM) }

// end signals the process and waits for it to end; a paused one is
// resumed first, or a SIGTERM would wait for a SIGCONT.
func (n *node) end(sig syscall.Signal) {
	n.mu.Lock()
	cmd, exited, paused := n.mu.cmd, n.mu.exited, n.mu.paused
	n.mu.cmd, n.mu.paused = nil, false
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	<-exited
}

// pause sends SIGSTOP: the process keeps its sockets but runs nothing.
func (n *node) pause() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.cmd != nil && !n.mu.paused {
		_ = n.mu.cmd.Process.Signal(syscall.SIGSTOP)
		n.mu.paused = true
	}
}

// resume sends SIGCONT.
func (n *node) resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.cmd != nil && n.mu.paused {
		_ = n.mu.cmd.Process.Signal(syscall.SIGCONT)
		n.mu.paused = false
	}
}

// cleanEnv is the environment without SLUICE_* settings that would change the server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return env
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// cluster is three nodes and the relays of their node-to-node links.
type cluster struct {
	t      *testing.T
	dir    string
	nodes  []*node           // nodes[i].id == i+1
	relays map[[2]int]*relay // [from, to] node ids
	net    netFaults
}

type clusterOpts struct {
	extra    []string // more server flags for every node
	iptables bool     // cut links with iptables (root only) instead of holding relays
}

// startCluster starts three nodes on 127.0.0.1-3 and waits until the controller has a
// leader that every node knows of.
func startCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	needBinary(t)
	dir := os.Getenv("SLUICE_CHAOS_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else {
		dir = filepath.Join(dir, fmt.Sprintf("%s-%d", t.Name(), time.Now().Unix()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster{t: t, dir: dir, relays: map[[2]int]*relay{}}
	const size = 3
	for i := 1; i <= size; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		c.nodes = append(c.nodes, &node{t: t, id: i, ip: ip,
			addr:     hostPort(ip, freePort(t, ip)),
			internal: hostPort(ip, freePort(t, ip)),
			http:     hostPort(ip, freePort(t, ip)),
			dataDir:  filepath.Join(dir, fmt.Sprintf("node%d", i)),
			logPath:  filepath.Join(dir, fmt.Sprintf("node%d.log", i)),
			extra:    o.extra,
		})
	}
	t.Cleanup(func() { // registered before anything starts: children never outlive the test
		for _, n := range c.nodes {
			n.kill()
			if n.conn != nil {
				n.conn.Close()
			}
		}
		for _, r := range c.relays {
			r.close()
		}
		if c.net != nil {
			c.net.close()
		}
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("node %d log %s (tail):\n%s", n.id, n.logPath, tail(n.logPath, 30))
			}
		}
	})
	for _, from := range c.nodes {
		var q []string
		for _, to := range c.nodes {
			if from == to {
				q = append(q, fmt.Sprintf("%d@%s", to.id, to.internal))
				continue
			}
			r, err := newRelay(from.ip+":0", to.internal, from.ip)
			if err != nil {
				t.Fatal(err)
			}
			c.relays[[2]int{from.id, to.id}] = r
			q = append(q, fmt.Sprintf("%d@%s", to.id, r.addr()))
		}
		from.quorum = strings.Join(q, ",")
	}
	if o.iptables {
		f, err := newIPTables(c)
		if err != nil {
			t.Fatal(err)
		}
		c.net = f
	} else {
		c.net = relayFaults{c}
	}
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		n.conn = conn
		wg.Add(1)
		go func() { defer wg.Done(); n.start() }() // nodes wait for a quorum: start together
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range c.nodes {
		c.verifyBound(n)
	}
	return c
}

// verifyBound checks that each listener of n is bound to n's own address.
func (c *cluster) verifyBound(n *node) {
	for _, a := range []string{n.addr, n.internal, n.http} {
		conn, err := net.DialTimeout("tcp", a, callTimeout)
		if err != nil {
			c.t.Fatalf("node %d does not listen on %s: %v", n.id, a, err)
		}
		conn.Close()
	}
}

func (c *cluster) node(id int) *node { return c.nodes[id-1] }

func (c *cluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.addr)
	}
	return out
}

// upNodes are the nodes running and not paused.
func (c *cluster) upNodes() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.up() {
			out = append(out, n)
		}
	}
	return out
}

// createTopic creates a topic through any node, retrying until one accepts it.
func (c *cluster) createTopic(name string, partitions int32, configs map[string]string) {
	c.t.Helper()
	deadline := time.Now().Add(startDeadline)
	var last error
	for time.Now().Before(deadline) {
		for _, n := range c.upNodes() {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, err := sluicev1.NewAdminServiceClient(n.conn).CreateTopic(ctx, &sluicev1.CreateTopicRequest{
				Name: name, Partitions: partitions, ReplicationFactor: 3, Configs: configs})
			cancel()
			if err == nil || strings.Contains(err.Error(), "exists") {
				c.waitLeaders(name, partitions)
				return
			}
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("create topic %s: %v", name, last)
}

// metadata asks the up nodes in turn for the topic's partitions.
func (c *cluster) metadata(topic string) ([]*sluicev1.PartitionMetadata, error) {
	var last error = fmt.Errorf("no node up")
	for _, n := range c.upNodes() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		resp, err := sluicev1.NewClusterServiceClient(n.conn).GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: []string{topic}})
		cancel()
		if err != nil {
			last = err
			continue
		}
		if len(resp.GetTopics()) == 0 {
			last = fmt.Errorf("node %d does not know topic %s", n.id, topic)
			continue
		}
		return resp.GetTopics()[0].GetPartitions(), nil
	}
	return nil, last
}

// leader returns the leader of a partition as an up node sees it, 0 if none.
func (c *cluster) leader(topic string, partition int32) int {
	ps, err := c.metadata(topic)
	if err != nil || int(partition) >= len(ps) {
		return 0
	}
	return int(ps[partition].GetLeader())
}

// waitLeaders waits until every partition of the topic has a leader.
func (c *cluster) waitLeaders(topic string, partitions int32) {
	c.t.Helper()
	deadline := time.Now().Add(startDeadline)
	for time.Now().Before(deadline) {
		ps, err := c.metadata(topic)
		if err == nil && len(ps) == int(partitions) {
			ok := true
			for _, p := range ps {
				ok = ok && p.GetLeader() > 0
			}
			if ok {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("topic %s: partitions without a leader after %v", topic, startDeadline)
}
