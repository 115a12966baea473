package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

var (
	binary    string // the built sluice binary
	binDir    string // holds binary; removed at exit
	skipWhy   string // non-empty: the server does not build, so there is nothing to test
	buildFail string // the server builds but the binary does not
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if b := os.Getenv("SLUICE_CHAOS_BINARY"); b != "" {
		binary = b // a binary built beforehand (make build)
	} else {
		build(dir)
	}
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

// build compiles the binary once for every test of the package.
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
	if out, err := run("build", "./server/...", "./cmd/..."); err != nil {
		skipWhy = "the server does not build:\n" + out
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

func fmtSscan(s string, v *int) (int, error) { return fmt.Sscan(s, v) }
