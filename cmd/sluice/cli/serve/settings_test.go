package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env map[string]string) (Options, error) {
	t.Helper()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	l := newLoader(fs)
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	return l.Load(func(k string) string { return env[k] })
}

func TestNoFlagsIsTheDefaultOneNodeCluster(t *testing.T) {
	o, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.DataDir != "./data" || o.ListenAddr != "127.0.0.1:9700" || o.InternalListenAddr != "127.0.0.1:9701" ||
		o.HTTPListenAddr != "127.0.0.1:9702" || o.NodeID != 1 || o.LogLevel != "info" || o.LogFormat != "text" {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestPrecedenceFlagOverEnvOverFileOverDefault(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sluice.yaml")
	yaml := "data_dir: /from/file\nlisten: 127.0.0.1:1111\nrack: file-rack\ntick_interval: 250ms\nsegment_bytes: 64MiB\njoin: [a:1, b:2]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SLUICE_DATA_DIR": "/from/env", "SLUICE_LISTEN": "127.0.0.1:2222", "SLUICE_CONTROLLER_VOTERS": "1,2,3"}
	o, err := load(t, []string{"--config", file, "--data-dir", "/from/flag"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.DataDir != "/from/flag" {
		t.Errorf("data dir %q: the flag should win", o.DataDir)
	}
	if o.ListenAddr != "127.0.0.1:2222" {
		t.Errorf("listen %q: the environment should beat the file", o.ListenAddr)
	}
	if o.Rack != "file-rack" || o.TickInterval != 250*time.Millisecond || o.SegmentBytes != 64<<20 {
		t.Errorf("file settings not applied: rack %q tick %v segment %d", o.Rack, o.TickInterval, o.SegmentBytes)
	}
	if strings.Join(o.Join, ",") != "a:1,b:2" {
		t.Errorf("join from a YAML list: %q", o.Join)
	}
	if fmt.Sprint(o.ControllerVoters) != "[1 2 3]" {
		t.Errorf("controller voters from the environment: %v", o.ControllerVoters)
	}
	if o.HTTPListenAddr != "127.0.0.1:9702" {
		t.Errorf("unset setting should keep its default, got %q", o.HTTPListenAddr)
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(file, []byte("node_id: 7\nlog_format: json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := load(t, nil, map[string]string{ConfigFileEnv: file})
	if err != nil {
		t.Fatal(err)
	}
	if o.NodeID != 7 || o.LogFormat != "json" {
		t.Fatalf("got node %d format %q", o.NodeID, o.LogFormat)
	}
}

func TestBadSettingsAreNamed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(file, []byte("data_dir: x\ncolour: blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--config", file}, want: `line 2: unknown setting "colour"`},
		{env: map[string]string{"SLUICE_NODE_ID": "one"}, want: "SLUICE_NODE_ID"},
		{args: []string{"--tick-interval", "soon"}, want: "tick-interval"},
		{args: []string{"--segment-bytes", "12 parsecs"}, want: "segment-bytes"},
		{args: []string{"--node-id", "-3"}, want: "node-id"},
		{args: []string{"--controller-voters", "1,x"}, want: "controller-voters"},
	} {
		_, err := load(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %v env %v: error %v, want mention of %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestEveryConfigFieldIsASetting(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range settings() {
		for _, name := range []string{"flag " + s.Flag, "env " + s.Env, "yaml " + s.YAML} {
			if seen[name] {
				t.Errorf("duplicate %s", name)
			}
			seen[name] = true
		}
		if !strings.HasPrefix(s.Env, "SLUICE_") || s.Help == "" {
			t.Errorf("setting %s: env %q help %q", s.Field, s.Env, s.Help)
		}
	}
	for _, f := range []string{"data-dir", "listen", "internal-listen", "http-listen", "join", "rack", "node-id", "log-level", "log-format"} {
		if !seen["flag "+f] {
			t.Errorf("no --%s", f)
		}
	}
}

func TestKebab(t *testing.T) {
	for in, want := range map[string]string{"MaxRecvMsgBytes": "max-recv-msg-bytes", "HTTPListenAddr": "http-listen-addr", "NodeID": "node-id"} {
		if got := kebab(in); got != want {
			t.Errorf("kebab(%s) = %s, want %s", in, got, want)
		}
	}
}
