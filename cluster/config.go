package cluster

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Topic configuration keys (Kafka's names).
const (
	ConfigRetentionMs       = "retention.ms"
	ConfigRetentionBytes    = "retention.bytes"
	ConfigSegmentBytes      = "segment.bytes"
	ConfigSegmentMs         = "segment.ms"
	ConfigMaxMessageBytes   = "max.message.bytes"
	ConfigTimestampType     = "message.timestamp.type"
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigMinInsyncReplicas = "min.insync.replicas"
)

// Values of message.timestamp.type and cleanup.policy.
const (
	TimestampCreateTime    = "CreateTime"
	TimestampLogAppendTime = "LogAppendTime"
	CleanupDelete          = "delete"
	CleanupCompact         = "compact"
)

// configDefaults are the values of keys a topic does not set.
var configDefaults = map[string]string{
	ConfigRetentionMs:       "604800000",
	ConfigRetentionBytes:    "-1",
	ConfigSegmentBytes:      "134217728",
	ConfigSegmentMs:         "604800000",
	ConfigMaxMessageBytes:   "1048588",
	ConfigTimestampType:     TimestampCreateTime,
	ConfigCleanupPolicy:     CleanupDelete,
	ConfigMinInsyncReplicas: "1",
}

// ConfigKeys lists every topic configuration key, sorted.
func ConfigKeys() []string { return slices.Sorted(maps.Keys(configDefaults)) }

// TopicConfig is a topic's effective configuration, parsed.
type TopicConfig struct {
	RetentionMs       int64 // -1: forever
	RetentionBytes    int64 // -1: no limit
	SegmentBytes      int64
	SegmentMs         int64
	MaxMessageBytes   int32
	LogAppendTime     bool
	CleanupPolicy     string
	MinInsyncReplicas int32
}

// ConfigEntry is one key with its effective value.
type ConfigEntry struct {
	Key, Value string
	IsDefault  bool
}

func parseInt(key, v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, &ConfigError{Key: key, Value: v, Reason: "not an integer"}
	}
	if n < lo || n > hi {
		return 0, &ConfigError{Key: key, Value: v, Reason: fmt.Sprintf("must be between %d and %d", lo, hi)}
	}
	return n, nil
}

// validateConfigValue checks one key/value pair; rf is the topic's
// replication factor (for min.insync.replicas).
func validateConfigValue(key, v string, rf int32) error {
	const maxInt32 = 1<<31 - 1
	var err error
	switch key {
	case ConfigRetentionMs, ConfigRetentionBytes:
		_, err = parseInt(key, v, -1, 1<<62)
	case ConfigSegmentBytes:
		_, err = parseInt(key, v, 4096, 1<<40)
	case ConfigSegmentMs:
		_, err = parseInt(key, v, 1, 1<<62)
	case ConfigMaxMessageBytes:
		_, err = parseInt(key, v, 1, maxInt32)
	case ConfigMinInsyncReplicas:
		_, err = parseInt(key, v, 1, int64(max(rf, 1)))
	case ConfigTimestampType:
		if v != TimestampCreateTime && v != TimestampLogAppendTime {
			err = &ConfigError{Key: key, Value: v, Reason: `must be "CreateTime" or "LogAppendTime"`}
		}
	case ConfigCleanupPolicy:
		switch v {
		case CleanupDelete:
		case CleanupCompact:
			err = &ConfigError{Key: key, Value: v, Reason: "log compaction is not supported yet"}
		default:
			err = &ConfigError{Key: key, Value: v, Reason: `must be "delete" or "compact"`}
		}
	default:
		err = &ConfigError{Key: key, Value: v, Reason: "unknown configuration key"}
	}
	return err
}

// ValidateConfigs checks every key and value of a topic's explicit
// configuration for a topic of replication factor rf.
func ValidateConfigs(cfg map[string]string, rf int32) error {
	for _, k := range slices.Sorted(maps.Keys(cfg)) {
		if err := validateConfigValue(k, cfg[k], rf); err != nil {
			return err
		}
	}
	return nil
}

// effective returns the value of key: explicit or default.
func effective(cfg map[string]string, key string) (string, bool) {
	if v, ok := cfg[key]; ok {
		return v, false
	}
	return configDefaults[key], true
}

// Entries lists every key with its effective value, sorted by key.
func configEntries(cfg map[string]string) []ConfigEntry {
	keys := ConfigKeys()
	out := make([]ConfigEntry, 0, len(keys))
	for _, k := range keys {
		v, def := effective(cfg, k)
		out = append(out, ConfigEntry{Key: k, Value: v, IsDefault: def})
	}
	return out
}

// parseTopicConfig parses validated explicit configuration plus defaults.
// Values were validated when stored; a bad one falls back to the default.
func parseTopicConfig(cfg map[string]string) TopicConfig {
	num := func(k string) int64 {
		v, _ := effective(cfg, k)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			n, _ = strconv.ParseInt(configDefaults[k], 10, 64)
		}
		return n
	}
	ts, _ := effective(cfg, ConfigTimestampType)
	cp, _ := effective(cfg, ConfigCleanupPolicy)
	return TopicConfig{
		RetentionMs:       num(ConfigRetentionMs),
		RetentionBytes:    num(ConfigRetentionBytes),
		SegmentBytes:      num(ConfigSegmentBytes),
		SegmentMs:         num(ConfigSegmentMs),
		MaxMessageBytes:   int32(num(ConfigMaxMessageBytes)),
		LogAppendTime:     ts == TimestampLogAppendTime,
		CleanupPolicy:     cp,
		MinInsyncReplicas: int32(num(ConfigMinInsyncReplicas)),
	}
}
