package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLISmoke drives a one-node server through the CLI: topics, produce, consume,
// offsets, cluster status, JSON output and error reporting.
func TestCLISmoke(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"))

	n.ok("", "topic", "create", "smoke", "--partitions", "2", "--replication-factor", "1")

	var topics []struct {
		Name       string `json:"name"`
		Partitions int32  `json:"partitions"`
	}
	mustJSON(t, n.ok("", "topic", "list", "--format", "json"), &topics)
	if len(topics) != 1 || topics[0].Name != "smoke" || topics[0].Partitions != 2 {
		t.Fatalf("topic list: %+v", topics)
	}
	var desc struct {
		Name       string            `json:"name"`
		Partitions []json.RawMessage `json:"partitions"`
	}
	mustJSON(t, n.ok("", "topic", "describe", "smoke", "--format", "json"), &desc)
	if desc.Name != "smoke" || len(desc.Partitions) != 2 {
		t.Fatalf("topic describe: %+v", desc)
	}

	// Plain lines to partition 0, with a header.
	var sum struct {
		Records    int64 `json:"records"`
		Partitions []struct {
			Partition   int32 `json:"partition"`
			FirstOffset int64 `json:"first_offset"`
			LastOffset  int64 `json:"last_offset"`
		} `json:"partitions"`
	}
	mustJSON(t, n.ok("alpha\nbeta\ngamma\n", "produce", "smoke", "--partition", "0", "--header", "src=e2e", "--format", "json"), &sum)
	if sum.Records != 3 || len(sum.Partitions) != 1 || sum.Partitions[0].FirstOffset != 0 || sum.Partitions[0].LastOffset != 2 {
		t.Fatalf("produce summary: %+v", sum)
	}
	if got := n.ok("", "consume", "smoke", "--partition", "0", "--from", "beginning", "-n", "3"); got != "alpha\nbeta\ngamma\n" {
		t.Fatalf("consume text = %q", got)
	}
	lines := strings.Split(strings.TrimSpace(n.ok("", "consume", "smoke", "--partition", "0", "--from", "1", "-n", "2", "--format", "json")), "\n")
	if len(lines) != 2 {
		t.Fatalf("consume json: %d lines: %q", len(lines), lines)
	}
	for i, line := range lines {
		var rec struct {
			Partition   int32  `json:"partition"`
			Offset      int64  `json:"offset"`
			Value       string `json:"value"`
			TimestampMs int64  `json:"timestamp_ms"`
			Headers     []struct {
				Key, Value string
			} `json:"headers"`
		}
		mustJSON(t, line, &rec)
		want := []string{"beta", "gamma"}[i]
		if rec.Partition != 0 || rec.Offset != int64(i+1) || rec.Value != want || rec.TimestampMs <= 0 ||
			len(rec.Headers) != 1 || rec.Headers[0].Key != "src" || rec.Headers[0].Value != "e2e" {
			t.Fatalf("consume json line %d: %+v", i, rec)
		}
	}

	// Keyed records, compressed; a template shows key, value and coordinates.
	n.ok("k1:v1\nk2:v2\nk1:v3\n", "produce", "smoke", "--key-separator", ":", "--compression", "zstd")
	out := n.ok("", "consume", "smoke", "--from", "beginning", "--exit-at-end", "--format", `%k=%v@%p\n`)
	var keyed []string
	part := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "k") {
			keyed = append(keyed, l)
			kv, p, _ := strings.Cut(l, "@")
			k, _, _ := strings.Cut(kv, "=")
			if prev, ok := part[k]; ok && prev != p {
				t.Fatalf("key %s in partitions %s and %s", k, prev, p)
			}
			part[k] = p
		}
	}
	if len(keyed) != 3 {
		t.Fatalf("keyed records read back: %q (all output %q)", keyed, out)
	}

	var offs []struct {
		Partition int32 `json:"partition"`
		Earliest  int64 `json:"earliest"`
		Latest    int64 `json:"latest"`
	}
	mustJSON(t, n.ok("", "offsets", "smoke", "--format", "json"), &offs)
	total := int64(0)
	for _, o := range offs {
		total += o.Latest - o.Earliest
	}
	if len(offs) != 2 || total != 6 {
		t.Fatalf("offsets: %+v", offs)
	}

	var status struct {
		Cluster struct {
			Nodes []json.RawMessage `json:"nodes"`
		} `json:"cluster"`
	}
	mustJSON(t, n.ok("", "cluster", "status", "--format", "json"), &status)
	if len(status.Cluster.Nodes) != 1 {
		t.Fatalf("cluster status: %+v", status)
	}

	// Errors carry the reason and a non-zero exit status.
	r := n.cli("", "topic", "describe", "no-such-topic")
	if r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_TOPIC") || !strings.HasPrefix(r.stderr, "error: ") {
		t.Fatalf("describe unknown topic: exit %d, stderr %q", r.code, r.stderr)
	}
	r = n.cli("", "topic", "create", "smoke")
	if r.code != 1 || !strings.Contains(r.stderr, "TOPIC_EXISTS") {
		t.Fatalf("create existing topic: exit %d, stderr %q", r.code, r.stderr)
	}
	r = n.cli("", "consume", "smoke", "--from", "yesterday-ish")
	if r.code != 1 || !strings.Contains(r.stderr, "--from") {
		t.Fatalf("bad --from: exit %d, stderr %q", r.code, r.stderr)
	}
	r = n.cli("", "produce")
	if r.code != 2 {
		t.Fatalf("produce without a topic: exit %d, stderr %q", r.code, r.stderr)
	}

	n.ok("", "topic", "delete", "smoke")
	if err := n.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, n.logs.String())
	}
}

// TestServerHelpAndConfigErrors checks `sluice server --help` documents each setting with
// its environment variable, and that a bad setting is a clear error.
func TestServerHelpAndConfigErrors(t *testing.T) {
	needBinary(t)
	n := &node{t: t}
	r := n.cli("", "server", "--help")
	if r.code != 0 {
		t.Fatalf("server --help: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"--data-dir", "SLUICE_DATA_DIR", "--listen", "--http-listen", "--config", "--log-format"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("server --help lacks %q", want)
		}
	}
	r = n.cli("", "server", "--tick-interval", "soon")
	if r.code != 2 || !strings.Contains(r.stderr, "tick-interval") {
		t.Fatalf("bad flag: exit %d, stderr %q", r.code, r.stderr)
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON (%v): %q", err, s)
	}
}

// TestServerSettingsPrecedence starts real servers from a YAML file, the environment and
// flags, and reads the data directory each one reports: flag > environment > file.
func TestServerSettingsPrecedence(t *testing.T) {
	needBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "sluice.yaml")
	yaml := "data_dir: " + filepath.Join(dir, "from-file") + "\n" +
		"listen: 127.0.0.1:0\ninternal_listen: 127.0.0.1:0\nhttp_listen: 127.0.0.1:0\nlog_format: json\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"file", []string{"server", "--config", file}, nil, "from-file"},
		{"env over file", []string{"server"}, []string{"SLUICE_CONFIG=" + file, "SLUICE_DATA_DIR=" + filepath.Join(dir, "from-env")}, "from-env"},
		{"flag over env", []string{"server", "--config", file, "--data-dir", filepath.Join(dir, "from-flag")},
			[]string{"SLUICE_DATA_DIR=" + filepath.Join(dir, "from-env")}, "from-flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startProcess(t, tc.args, tc.env)
			if n.dataDir != filepath.Join(dir, tc.want) {
				t.Errorf("data dir %q, want %q", n.dataDir, filepath.Join(dir, tc.want))
			}
			if _, err := os.Stat(filepath.Join(dir, tc.want)); err != nil {
				t.Errorf("data dir not created: %v", err)
			}
			if err := n.stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
		})
	}
}

// TestShutdownWithConsumerWaiting stops a server with SIGTERM while `sluice consume`
// waits for new records in a long poll: the waiting consumer does not hold the shutdown
// up, and the consumer (which keeps retrying an unreachable cluster, as consumers do
// across restarts) still stops cleanly on Ctrl-C.
func TestShutdownWithConsumerWaiting(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	n.ok("", "topic", "create", "waiting")
	n.ok("x\n", "produce", "waiting")
	consumer := n.background("consume", "waiting", "--from", "end")
	// A round trip of another client gives the background consumer time to reach its long
	// poll; the checks below hold wherever it is.
	n.ok("", "consume", "waiting", "-n", "1")

	if err := n.stop(); err != nil {
		t.Fatalf("stop with a consumer waiting: %v\n%s", err, n.logs.String())
	}
	// The consumer may have ended on its own already (if the shutdown caught it between
	// calls, before its long poll), with an error naming the cluster; otherwise Ctrl-C
	// stops it cleanly.
	_ = consumer.cmd.Process.Signal(os.Interrupt)
	r := consumer.wait(t)
	if r.code != 0 && !strings.Contains(r.stderr, "cannot reach the cluster") {
		t.Fatalf("consumer after the shutdown: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestGroupConsume consumes as a consumer group through the CLI: a second run goes on
// where the first committed, seek moves the group back, delete removes it.
func TestGroupConsume(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	n.ok("", "topic", "create", "jobs", "--partitions", "1")
	n.ok("1\n2\n3\n4\n5\n6\n", "produce", "jobs")

	if got := n.ok("", "consume", "jobs", "--group", "workers", "-n", "4"); got != "1\n2\n3\n4\n" {
		t.Fatalf("first member read %q", got)
	}
	if got := n.ok("", "consume", "jobs", "--group", "workers", "-n", "2"); got != "5\n6\n" {
		t.Fatalf("second member read %q, want what the first left", got)
	}
	var desc struct {
		GroupID string `json:"group_id"`
		Offsets []struct {
			Partition       int32  `json:"partition"`
			CommittedOffset string `json:"committed_offset"`
			Lag             string `json:"lag"`
		} `json:"offsets"`
	}
	mustJSON(t, n.ok("", "group", "describe", "workers", "--format", "json"), &desc)
	if desc.GroupID != "workers" || len(desc.Offsets) != 1 || desc.Offsets[0].CommittedOffset != "6" {
		t.Fatalf("group describe: %+v", desc)
	}
	n.ok("", "group", "seek", "workers", "--topic", "jobs", "--to", "beginning")
	if got := n.ok("", "consume", "jobs", "--group", "workers", "-n", "1"); got != "1\n" {
		t.Fatalf("after seek to the beginning read %q", got)
	}
	n.ok("", "group", "delete", "workers")
	if r := n.cli("", "group", "describe", "workers"); r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_GROUP") {
		t.Fatalf("describe deleted group: exit %d, stderr %q", r.code, r.stderr)
	}
}
