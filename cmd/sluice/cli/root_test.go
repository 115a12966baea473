package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"produce"},                // missing topic
		{"topic", "create"},        // missing name
		{"consume", "t", "--from"}, // flag without value
		{"frobnicate"},             // unknown command
		{"topic", "list", "--no-such-flag"},
	} {
		code, _, stderr := run(args...)
		if code != ExitUsage || !strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, "--help") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestBadValuesExitOne(t *testing.T) {
	for args, want := range map[string]string{
		"topic list --format yaml":                    "--format must be text or json",
		"produce t --acks 2 --brokers 127.0.0.1:1":    "--acks",
		"consume t --format %q --brokers 127.0.0.1:1": "unknown escape",
	} {
		code, _, stderr := run(strings.Fields(args)...)
		if code != ExitError || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", args, code, stderr, want)
		}
	}
}

func TestUnreachableClusterIsNamed(t *testing.T) {
	code, _, stderr := run("topic", "list", "--brokers", "127.0.0.1:1", "--timeout", "2s")
	if code != ExitError || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestHelpListsNouns(t *testing.T) {
	code, out, _ := run("--help")
	for _, noun := range []string{"server", "topic", "produce", "consume", "offsets", "group", "cluster", "partition", "node", "bench", "version"} {
		if !strings.Contains(out, noun) {
			t.Errorf("help lacks %q", noun)
		}
	}
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
}

// bench produce --in-process starts its own one-node server, produces to it
// and removes the server's data afterwards.
func TestBenchProduceInProcess(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := run("bench", "produce", "--in-process", "--in-process-dir", dir, "--sync",
		"--records", "20", "--record-size", "100", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var s struct {
		Mode    string `json:"mode"`
		Records int64  `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Mode != "produce-sync" || s.Records != 20 {
		t.Fatalf("summary %q (%v), want 20 records produced one at a time", out, err)
	}
	if !strings.Contains(stderr, "in-process one-node server at 127.0.0.1:") {
		t.Errorf("stderr %q does not name the in-process server", stderr)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the server's data was left in %s: %v", dir, left)
	}
}
