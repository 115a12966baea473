package serve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// ConfigFileEnv names the YAML file when --config is not given.
const ConfigFileEnv = "SLUICE_CONFIG"

// flagValue is the pflag.Value of one setting: it records the text given on the command
// line, to be applied after the file and the environment.
type flagValue struct {
	s    setting
	text *string
	def  string
}

func (f *flagValue) String() string {
	if *f.text != "" {
		return *f.text
	}
	return f.def
}
func (f *flagValue) Set(v string) error {
	var probe Options // validate now so pflag reports the flag by name
	if err := f.s.set(&probe, v); err != nil {
		return err
	}
	if f.s.typ.Kind() == reflect.Slice && *f.text != "" {
		*f.text += "," + v // repeated --join accumulates
		return nil
	}
	*f.text = v
	return nil
}
func (f *flagValue) Type() string { return f.s.typeName() }

// loader builds Options from defaults, a YAML file, the environment and flags.
type loader struct {
	settings   []setting
	flagText   map[string]*string // by Field
	configFile string
	flags      *pflag.FlagSet
}

func newLoader(fs *pflag.FlagSet) *loader {
	l := &loader{settings: settings(), flagText: map[string]*string{}, flags: fs}
	def := DefaultOptions()
	// Help shows the defaults Validate fills in for settings DefaultConfig leaves zero;
	// loading still starts from DefaultConfig, so Validate derives them from what is set.
	shown := def
	_ = shown.Config.Validate()
	fs.StringVar(&l.configFile, "config", "",
		"YAML file of settings (keys as in the table below, e.g. data_dir: /var/lib/sluice) (env "+ConfigFileEnv+")")
	for _, s := range l.settings {
		text := new(string)
		l.flagText[s.Field] = text
		d := s.get(&def)
		if zero := reflect.ValueOf(def).FieldByIndex(s.index).IsZero(); zero && s.typ.Kind() != reflect.Slice {
			d = s.get(&shown)
		}
		fs.Var(&flagValue{s: s, text: text, def: d}, s.Flag, s.Help+" (env "+s.Env+")")
		if s.typ.Kind() == reflect.Bool {
			fs.Lookup(s.Flag).NoOptDefVal = "true"
		}
	}
	return l
}

// Load applies, over the defaults, the YAML file, then SLUICE_* variables from env, then
// the flags given on the command line.
func (l *loader) Load(env func(string) string) (Options, error) {
	o := DefaultOptions()
	file := l.configFile
	if file == "" {
		file = env(ConfigFileEnv)
	}
	if file != "" {
		if err := l.applyFile(&o, file); err != nil {
			return o, err
		}
	}
	for _, s := range l.settings {
		if v, ok := lookupEnv(env, s.Env); ok {
			if err := s.set(&o, v); err != nil {
				return o, fmt.Errorf("%s: %w", s.Env, err)
			}
		}
	}
	for _, s := range l.settings {
		if f := l.flags.Lookup(s.Flag); f != nil && f.Changed {
			if err := s.set(&o, *l.flagText[s.Field]); err != nil {
				return o, fmt.Errorf("--%s: %w", s.Flag, err)
			}
		}
	}
	return o, nil
}

func lookupEnv(env func(string) string, name string) (string, bool) {
	v := env(name)
	return v, v != ""
}

func (l *loader) applyFile(o *Options, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	return l.applyYAML(o, data, path)
}

// applyYAML applies the settings of a YAML document; path names it in errors.
func (l *loader) applyYAML(o *Options, data []byte, path string) error {
	var raw map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	byKey := map[string]setting{}
	for _, s := range l.settings {
		byKey[s.YAML] = s
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		node := raw[k]
		s, ok := byKey[strings.ReplaceAll(k, "-", "_")]
		if !ok {
			return fmt.Errorf("config file %s: line %d: unknown setting %q (see sluice server --help)", path, node.Line, k)
		}
		var text string
		switch node.Kind {
		case yaml.ScalarNode:
			text = node.Value
		case yaml.SequenceNode:
			var list []string
			if err := node.Decode(&list); err != nil {
				return fmt.Errorf("config file %s: line %d: %s: %w", path, node.Line, k, err)
			}
			text = strings.Join(list, ",")
		default:
			return fmt.Errorf("config file %s: line %d: %s: want a value or a list", path, node.Line, k)
		}
		if err := s.set(o, text); err != nil {
			return fmt.Errorf("config file %s: line %d: %s: %w", path, node.Line, k, err)
		}
	}
	return nil
}
