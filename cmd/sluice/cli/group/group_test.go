package group

import (
	"testing"
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func TestParseTarget(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	for in, check := range map[string]func(*sluicev1.ResetTarget) bool{
		"beginning": func(x *sluicev1.ResetTarget) bool { return x.GetEarliest() },
		"end":       func(x *sluicev1.ResetTarget) bool { return x.GetLatest() },
		"42":        func(x *sluicev1.ResetTarget) bool { return x.GetOffset() == 42 },
		"@-1s":      func(x *sluicev1.ResetTarget) bool { return x.GetTimestampMs() == 999_999_000 },
	} {
		got, err := parseTarget(in, now)
		if err != nil || !check(got) {
			t.Errorf("parseTarget(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "soon", "@never"} {
		if _, err := parseTarget(bad, now); err == nil {
			t.Errorf("parseTarget(%q) accepted", bad)
		}
	}
}
