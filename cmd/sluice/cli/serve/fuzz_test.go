package serve

import (
	"testing"

	"github.com/spf13/pflag"
)

// FuzzConfigFile feeds arbitrary bytes to the YAML settings reader: it must return
// settings or an error, never panic.
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{
		"", "data_dir: /x\n", "join: [a:1, b:2]\n", "segment_bytes: 64MiB\n",
		"tick_interval: 5s\nnode_id: 3\n", "listen: {a: b}\n", "- 1\n- 2\n", "node_id: -1\n",
		"default_partitions: 99999999999999999999\n", "&a [*a]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newLoader(pflag.NewFlagSet("fuzz", pflag.ContinueOnError))
		o := DefaultOptions()
		_ = l.applyYAML(&o, data, "fuzz.yaml")
	})
}
