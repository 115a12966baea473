package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Failure guards, not expectations.
const (
	startDeadline = 2 * time.Minute
	stopDeadline  = time.Minute
	callDeadline  = time.Minute
)

var (
	binary    string // path of the built sluice binary
	skipWhy   string // non-empty: the server does not build yet
	buildFail string // the binary failed to build although the server did
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build(dir)
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// build compiles the binary once for all tests.
func build(dir string) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		buildFail = err.Error()
		return
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("build", "./server/..."); err != nil {
		skipWhy = "the server package does not build yet:\n" + out
		return
	}
	binary = filepath.Join(dir, "sluice")
	if out, err := run("build", "-o", binary, "./cmd/sluice"); err != nil {
		buildFail = "go build ./cmd/sluice: " + out
	}
}

func needBinary(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	if buildFail != "" {
		t.Fatal(buildFail)
	}
}

// logBuf keeps a node's stderr for failure reports.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// node is one running `sluice server` process.
type node struct {
	t       *testing.T
	dataDir string
	cmd     *exec.Cmd
	addr    string
	http    string
	logs    *logBuf
	ready   chan [3]string // addresses and data dir, from the "ready" log line
	exited  chan struct{}  // closed when the process has been waited for
	waitErr error          // set before exited is closed
}

// startNode runs `sluice server` on dataDir with ephemeral ports and waits until it
// reports that it is ready.
func startNode(t *testing.T, dataDir string, extra ...string) *node {
	t.Helper()
	needBinary(t)
	args := append([]string{"server",
		"--data-dir", dataDir,
		"--listen", "127.0.0.1:0",
		"--internal-listen", "127.0.0.1:0",
		"--http-listen", "127.0.0.1:0",
		"--log-format", "json",
	}, extra...)
	return startProcess(t, args, nil)
}

// startProcess runs the binary with args (a `server` command logging JSON) and extra
// environment variables, and waits until the server reports that it is ready.
func startProcess(t *testing.T, args []string, env []string) *node {
	t.Helper()
	n := launchProcess(t, args, env)
	n.waitReady()
	return n
}

// launchProcess starts the binary with args and extra environment variables without
// waiting for it to be ready (nodes of a cluster wait for each other); waitReady waits.
func launchProcess(t *testing.T, args []string, env []string) *node {
	t.Helper()
	needBinary(t)
	n := &node{t: t, logs: &logBuf{}, exited: make(chan struct{}), ready: make(chan [3]string, 1)}
	n.cmd = exec.Command(binary, args...)
	n.cmd.Env = append(cleanEnv(), env...)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := n.ready
	go func() { // ends when the process closes stderr
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			n.logs.Write(append(append([]byte(nil), line...), '\n'))
			var rec struct {
				Msg     string `json:"msg"`
				Addr    string `json:"addr"`
				HTTP    string `json:"http"`
				DataDir string `json:"data_dir"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "sluice server ready" {
				select {
				case ready <- [3]string{rec.Addr, rec.HTTP, rec.DataDir}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		if n.running() {
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() {
			t.Logf("server log (%s):\n%s", n.dataDir, n.logs.String())
		}
	})
	return n
}

// waitReady waits until the server logs that it is ready and records its addresses.
func (n *node) waitReady() {
	n.t.Helper()
	select {
	case a := <-n.ready:
		n.addr, n.http, n.dataDir = a[0], a[1], a[2]
	case <-n.exited:
		n.t.Fatalf("server exited before it was ready: %v\n%s", n.waitErr, n.logs.String())
	case <-time.After(startDeadline):
		n.t.Fatalf("server not ready after %v:\n%s", startDeadline, n.logs.String())
	}
}

func (n *node) running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// kill stops the process with SIGKILL: no shutdown code runs.
func (n *node) kill() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && n.running() {
		n.t.Fatal(err)
	}
	<-n.exited
}

// stop sends SIGTERM and returns the exit error (nil for status 0).
func (n *node) stop() error {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-n.exited:
		return n.waitErr
	case <-time.After(stopDeadline):
		n.t.Fatalf("server still running %v after SIGTERM:\n%s", stopDeadline, n.logs.String())
		return nil
	}
}

// dial opens a gRPC connection to the node's client API.
func (n *node) dial() *grpc.ClientConn {
	n.t.Helper()
	conn, err := grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { conn.Close() })
	return conn
}

// cleanEnv is the test's environment without SLUICE_* settings that would change the
// server or the CLI under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return env
}

// result is the outcome of one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the sluice binary against the node with stdin and returns its output.
func (n *node) cli(stdin string, args ...string) result {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--brokers", n.addr}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			n.t.Fatalf("sluice %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs the CLI and fails the test unless it exits 0.
func (n *node) ok(stdin string, args ...string) string {
	n.t.Helper()
	r := n.cli(stdin, args...)
	if r.code != 0 {
		n.t.Fatalf("sluice %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// bg is a CLI command running in the background.
type bg struct {
	cmd      *exec.Cmd
	out, err bytes.Buffer
	done     chan struct{}
	runErr   error
}

// background starts the CLI against the node without waiting for it.
func (n *node) background(args ...string) *bg {
	n.t.Helper()
	b := &bg{done: make(chan struct{})}
	b.cmd = exec.Command(binary, append([]string{"--brokers", n.addr}, args...)...)
	b.cmd.Env = cleanEnv()
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.err
	if err := b.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() { b.runErr = b.cmd.Wait(); close(b.done) }()
	n.t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// wait waits for the command to end and returns its outcome.
func (b *bg) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(callDeadline):
		t.Fatalf("%v still running after %v", b.cmd.Args, callDeadline)
	}
	code := 0
	if b.runErr != nil {
		ee, ok := b.runErr.(*exec.ExitError)
		if !ok {
			t.Fatal(b.runErr)
		}
		code = ee.ExitCode()
	}
	return result{stdout: b.out.String(), stderr: b.err.String(), code: code}
}
