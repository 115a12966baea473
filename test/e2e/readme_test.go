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
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Env = append(cleanEnv(), "SLUICE_BROKERS="+n.addr)
		out, err := cmd.CombinedOutput()
		cancel()
		if wantFail != (err != nil) {
			t.Errorf("README command %q: err %v (want failure: %v)\n%s", c, err, wantFail, out)
		}
	}
	t.Logf("ran %d README commands", ran)
}

// TestREADMEGrpcurl runs the README's grpcurl walkthrough (and its curl calls to the HTTP
// listener) against a fresh node. It is skipped when grpcurl cannot be built here (the
// tools module needs its dependencies in the module cache).
func TestREADMEGrpcurl(t *testing.T) {
	needBinary(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	probe := exec.Command("go", "tool", "-modfile=tools/go.mod", "grpcurl", "-version")
	probe.Dir = root
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("grpcurl is not available: %v\n%s", err, out)
	}
	cmds := readmeCommands(t, "## grpcurl walkthrough")
	if len(cmds) < 8 {
		t.Fatalf("found only %d commands in the README's grpcurl walkthrough", len(cmds))
	}
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	for _, c := range cmds {
		script := "shopt -s expand_aliases\nalias grpcurl='go tool -modfile=tools/go.mod grpcurl'\n" +
			strings.NewReplacer("127.0.0.1:9700", n.addr, "127.0.0.1:9702", n.http).Replace(c)
		ctx, cancel := context.WithTimeout(context.Background(), 5*callDeadline)
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Dir = root
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("README command %q: %v\n%s", c, err, out)
		}
	}
	t.Logf("ran %d README commands", len(cmds))
}

// readmeCommands returns the commands of the shell blocks of a section: lines
// starting with a command the walkthroughs use, joined with their continuation lines
// (a trailing pipe or backslash, or an open single quote).
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
	s = s[i+len(heading):]
	if end := strings.Index(s, "\n## "); end >= 0 {
		s = s[:end] // the section ends at the next heading of its level
	}
	var block strings.Builder
	for {
		start := strings.Index(s, "```sh\n")
		if start < 0 {
			break
		}
		s = s[start+len("```sh\n"):]
		end := strings.Index(s, "```")
		if end < 0 {
			t.Fatalf("unterminated shell block after %q", heading)
		}
		block.WriteString(s[:end])
		s = s[end+3:]
	}
	s = block.String()
	var cmds []string
	var cur string
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur != "" {
			cur += "\n" + line
		} else if startsCommand(trimmed) {
			cur = line
		} else {
			continue
		}
		code, _, _ := strings.Cut(trimmed, " #")
		if strings.HasSuffix(code, "|") || strings.HasSuffix(code, `\`) || strings.Count(cur, "'")%2 == 1 {
			continue
		}
		cmds = append(cmds, cur)
		cur = ""
	}
	return cmds
}

func startsCommand(line string) bool {
	for _, p := range []string{"bin/sluice", "printf", "echo", "grpcurl", "go tool", "curl"} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}
