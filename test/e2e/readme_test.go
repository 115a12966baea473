package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEWalkthrough runs the shell commands of the README's CLI walkthrough against a
// fresh node, so the README cannot drift from the binary. A command whose comment shows
// "error:" must fail; every other must succeed. Commands that wait for new records
// (--from end) are skipped.
func TestREADMEWalkthrough(t *testing.T) {
	needBinary(t)
	cmds := readmeCommands(t, "## CLI walkthrough")
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands in the README's CLI walkthrough", len(cmds))
	}
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	ran := 0
	for _, c := range cmds {
		if strings.Contains(c, "--from end") {
			continue
		}
		ran++
		wantFail := strings.Contains(c, "# error:")
		script := strings.ReplaceAll(c, "bin/sluice", binary)
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", script)
		cmd.Env = append(cleanEnv(), "SLUICE_BROKERS="+n.addr)
		out, err := cmd.CombinedOutput()
		cancel()
		if wantFail != (err != nil) {
			t.Errorf("README command %q: err %v (want failure: %v)\n%s", c, err, wantFail, out)
		}
	}
	t.Logf("ran %d README commands", ran)
}

// readmeCommands returns the commands of the first shell block after heading: lines
// starting with bin/sluice, printf or echo, joined with their continuation lines.
func readmeCommands(t *testing.T, heading string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatalf("no shell block after %q", heading)
	}
	s = s[start+len("```sh\n"):]
	s = s[:strings.Index(s, "```")]
	var cmds []string
	var cur string
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur != "" {
			cur += "\n" + line
		} else if strings.HasPrefix(trimmed, "bin/sluice") || strings.HasPrefix(trimmed, "printf") || strings.HasPrefix(trimmed, "echo") {
			cur = line
		} else {
			continue
		}
		code, _, _ := strings.Cut(trimmed, " #")
		if strings.HasSuffix(code, "|") || strings.HasSuffix(code, `\`) {
			continue
		}
		cmds = append(cmds, cur)
		cur = ""
	}
	return cmds
}
