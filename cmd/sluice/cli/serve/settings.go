package serve

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sluicehq/sluice/server"
)

// Options is everything `sluice server` can be told: the node's server.Config plus the
// settings of the process around it.
type Options struct {
	server.Config

	LogLevel        string        // debug, info, warn, error
	LogFormat       string        // text or json
	ShutdownTimeout time.Duration // graceful phase of shutdown
}

// DefaultOptions is `sluice server` with no flags: a one-node cluster with data in ./data.
func DefaultOptions() Options {
	return Options{
		Config:          server.DefaultConfig(),
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 30 * time.Second,
	}
}

// meta names and documents a setting. Fields without an entry get derived names and a
// generic help text.
type meta struct {
	flag string // flag name without dashes; the env and YAML names derive from it
	help string
}

var fieldMeta = map[string]meta{
	"NodeID":                   {"node-id", "this node's id in the cluster"},
	"DataDir":                  {"data-dir", "directory holding the node's partitions and cluster metadata"},
	"ListenAddr":               {"listen", "client gRPC API address (host:port; port 0 picks a free port)"},
	"InternalListenAddr":       {"internal-listen", "node-to-node address: Raft and cluster metadata traffic between nodes"},
	"HTTPListenAddr":           {"http-listen", "HTTP address serving /metrics, /healthz and /readyz"},
	"AdvertiseAddr":            {"advertise", "client API address told to clients and other nodes (default: the bound --listen address)"},
	"Join":                     {"join", "internal listen addresses (host:port) of existing nodes: a node outside --controller-quorum joins the running cluster through them, at every start"},
	"Rack":                     {"rack", "rack of this node, for rack-aware replica placement"},
	"DefaultPartitions":        {"default-partitions", "partitions of a topic created without a partition count"},
	"DefaultReplicationFactor": {"default-replication-factor", "replication factor of a topic created without one (capped at the number of nodes)"},
	"OffsetsTopicPartitions":   {"offsets-topic-partitions", "partitions of __consumer_offsets (consumer groups and their offsets) when this node creates it; 0: one per live node"},
	"TickInterval":             {"tick-interval", "Raft clock period"},
	"RetentionCheck":           {"retention-check-interval", "how often retention runs on each partition"},
	"SegmentBytes":             {"segment-bytes", "default segment file size of partition logs (a topic's segment.bytes overrides it); accepts KiB/MiB/GiB"},
	"ProduceTimeout":           {"produce-timeout", "bound on a produce whose request sets no timeout"},
	"MaxRecvMsgBytes":          {"max-request-bytes", "largest request the client API accepts; accepts KiB/MiB/GiB"},
	"ControllerQuorum":         {"controller-quorum", "controller voters of a cluster of several nodes as id@host:port of their internal listeners, the same list on every node, this node among them (empty: a node alone)"},
	"ControllerVoters":         {"controller-voters", "node ids voting in the cluster metadata group when it is created (default: the ids of --controller-quorum, else this node alone)"},
	"LeaderBalanceInterval":    {"leader-balance-interval", "how often a node hands the partitions it leads to their preferred leaders (0: every minute; negative: never)"},
	"Pprof":                    {"pprof", "serve Go runtime profiles at /debug/pprof/ on the HTTP listener"},
	"LogLevel":                 {"log-level", "log level: debug, info, warn or error"},
	"LogFormat":                {"log-format", "log format on stderr: text or json"},
	"ShutdownTimeout":          {"shutdown-timeout", "how long a graceful shutdown may take before calls are cut off"},
}

// setting is one configurable field of Options.
type setting struct {
	Field string // Go field name
	Flag  string // --flag
	Env   string // SLUICE_...
	YAML  string // key in the YAML file
	Help  string
	index []int        // field path in Options
	typ   reflect.Type // field type
}

// settings lists every configurable field of Options in declaration order.
func settings() []setting {
	var out []setting
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			idx := append(append([]int(nil), index...), i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !supported(f.Type) {
				continue // Logger, Registry: set by this command, not by users
			}
			m, ok := fieldMeta[f.Name]
			if !ok {
				m = meta{flag: kebab(f.Name), help: "server setting " + f.Name}
			}
			out = append(out, setting{
				Field: f.Name,
				Flag:  m.flag,
				Env:   "SLUICE_" + strings.ToUpper(strings.ReplaceAll(m.flag, "-", "_")),
				YAML:  strings.ReplaceAll(m.flag, "-", "_"),
				Help:  m.help,
				index: idx,
				typ:   f.Type,
			})
		}
	}
	walk(reflect.TypeOf(Options{}), nil)
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

func supported(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
			return true
		}
	}
	return false
}

// typeName is how --help names a setting's value.
func (s setting) typeName() string {
	switch {
	case s.typ == durationType:
		return "duration"
	case s.typ.Kind() == reflect.Slice && s.typ.Elem().Kind() != reflect.String:
		return "ids"
	case s.typ.Kind() == reflect.Slice:
		return "list"
	case s.typ.Kind() == reflect.Bool:
		return "bool"
	case s.typ.Kind() == reflect.String:
		return "string"
	case strings.HasSuffix(s.Field, "Bytes"):
		return "bytes"
	}
	return "int"
}

// get renders the setting's value in o as it would be written in a flag.
func (s setting) get(o *Options) string {
	v := reflect.ValueOf(o).Elem().FieldByIndex(s.index)
	switch {
	case s.typ == durationType:
		return time.Duration(v.Int()).String()
	case s.typ.Kind() == reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// set parses text into the setting's field of o.
func (s setting) set(o *Options, text string) error {
	v := reflect.ValueOf(o).Elem().FieldByIndex(s.index)
	text = strings.TrimSpace(text)
	switch {
	case s.typ == durationType:
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("want a duration like 100ms or 30s, not %q", text)
		}
		v.SetInt(int64(d))
	case s.typ.Kind() == reflect.String:
		v.SetString(text)
	case s.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("want true or false, not %q", text)
		}
		v.SetBool(b)
	case s.typ.Kind() == reflect.Slice:
		list := reflect.MakeSlice(s.typ, 0, 4)
		for _, part := range strings.Split(text, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			elem := reflect.New(s.typ.Elem()).Elem()
			switch {
			case elem.Kind() == reflect.String:
				elem.SetString(part)
			case elem.CanInt():
				n, err := strconv.ParseInt(part, 10, 64)
				if err != nil || elem.OverflowInt(n) {
					return fmt.Errorf("want a comma-separated list of integers, not %q", text)
				}
				elem.SetInt(n)
			default:
				n, err := strconv.ParseUint(part, 10, 64)
				if err != nil || elem.OverflowUint(n) {
					return fmt.Errorf("want a comma-separated list of non-negative integers, not %q", text)
				}
				elem.SetUint(n)
			}
			list = reflect.Append(list, elem)
		}
		v.Set(list)
	case v.CanInt():
		n, err := parseInt(text, strings.HasSuffix(s.Field, "Bytes"))
		if err != nil {
			return err
		}
		if v.OverflowInt(n) {
			return fmt.Errorf("%d is out of range", n)
		}
		v.SetInt(n)
	case v.CanUint():
		n, err := parseInt(text, strings.HasSuffix(s.Field, "Bytes"))
		if err != nil {
			return err
		}
		if n < 0 || v.OverflowUint(uint64(n)) {
			return fmt.Errorf("%d is out of range", n)
		}
		v.SetUint(uint64(n))
	default:
		return fmt.Errorf("unsupported setting type %s", s.typ)
	}
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// parseInt parses an integer; sizes may carry a unit (KiB, MiB, GiB, KB, MB, GB, B).
func parseInt(text string, size bool) (int64, error) {
	if size {
		for _, u := range sizeUnits {
			if num, ok := strings.CutSuffix(text, u.suffix); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("want a size like 1048576 or 128MiB, not %q", text)
				}
				return n * u.mult, nil
			}
		}
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		if size {
			return 0, fmt.Errorf("want a size like 1048576 or 128MiB, not %q", text)
		}
		return 0, fmt.Errorf("want an integer, not %q", text)
	}
	return n, nil
}

// kebab turns a Go field name into a flag name: MaxRecvMsgBytes -> max-recv-msg-bytes,
// HTTPListenAddr -> http-listen-addr.
func kebab(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
