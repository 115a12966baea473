package serve

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestREADMEConfigTable checks that every row of the README's configuration table names
// a real setting with its real environment variable and YAML key.
func TestREADMEConfigTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `--([a-z-]+)` \\| `(SLUICE_[A-Z_]+)` \\| (`([a-z_]+)`|—) \\|")
	rows := row.FindAllStringSubmatch(string(data), -1)
	if len(rows) < 10 {
		t.Fatalf("found %d rows in the README's configuration table", len(rows))
	}
	byFlag := map[string]setting{}
	for _, s := range settings() {
		byFlag[s.Flag] = s
	}
	for _, r := range rows {
		flag, env, yaml := r[1], r[2], r[4]
		if flag == "config" {
			if env != ConfigFileEnv {
				t.Errorf("README: --config with %s, want %s", env, ConfigFileEnv)
			}
			continue
		}
		s, ok := byFlag[flag]
		if !ok {
			t.Errorf("README documents --%s, which sluice server does not have", flag)
			continue
		}
		if s.Env != env || s.YAML != yaml {
			t.Errorf("README: --%s with %s and %q, want %s and %q", flag, env, yaml, s.Env, s.YAML)
		}
	}
}
