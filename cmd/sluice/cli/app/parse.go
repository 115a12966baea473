package app

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// ParseTime reads a point in time given as milliseconds since the Unix epoch
// (1700000000000), as RFC 3339 (2026-11-22T17:00:00Z), or as a duration before now (-1h,
// -15m). It returns milliseconds since the epoch.
func ParseTime(s string, now time.Time) (int64, error) {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return ms, nil
	}
	if strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s[1:]); err == nil {
			return now.Add(-d).UnixMilli(), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%q is not a time: want milliseconds since the epoch, RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (-1h)", s)
}

// ParseAcks reads --acks: 0, 1 or all (also -1).
func ParseAcks(s string) (sluicev1.Acks, error) {
	switch strings.ToLower(s) {
	case "0", "none":
		return sluicev1.Acks_ACKS_NONE, nil
	case "1", "leader":
		return sluicev1.Acks_ACKS_LEADER, nil
	case "all", "-1":
		return sluicev1.Acks_ACKS_ALL, nil
	}
	return 0, fmt.Errorf("--acks must be 0, 1 or all, not %q", s)
}

// ParseCompression reads --compression: none, gzip, snappy, lz4 or zstd.
func ParseCompression(s string) (sluicev1.Compression, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return sluicev1.Compression_COMPRESSION_NONE, nil
	case "gzip":
		return sluicev1.Compression_COMPRESSION_GZIP, nil
	case "snappy":
		return sluicev1.Compression_COMPRESSION_SNAPPY, nil
	case "lz4":
		return sluicev1.Compression_COMPRESSION_LZ4, nil
	case "zstd":
		return sluicev1.Compression_COMPRESSION_ZSTD, nil
	}
	return 0, fmt.Errorf("--compression must be none, gzip, snappy, lz4 or zstd, not %q", s)
}

// FormatTime renders milliseconds since the epoch as RFC 3339 in UTC.
func FormatTime(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
