package coordinator

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TP names a partition of a topic.
type TP struct {
	Topic     string
	Partition int32
}

func (a TP) compare(b TP) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// sortTPs sorts partitions by topic, then partition.
func sortTPs(tps []TP) []TP {
	slices.SortFunc(tps, TP.compare)
	return tps
}

// Assignor is a server-side assignment strategy.
type Assignor int

// Assignors, numbered as the API's Assignor enum.
const (
	AssignorUnspecified Assignor = iota
	AssignorRange
	AssignorRoundRobin
	AssignorUniformSticky
)

func (a Assignor) String() string {
	switch a {
	case AssignorRange:
		return "range"
	case AssignorRoundRobin:
		return "round-robin"
	case AssignorUniformSticky:
		return "uniform-sticky"
	}
	return "unspecified"
}

// Subscription is what a member wants to consume: topic names and/or a
// regular expression matched against topic names.
type Subscription struct {
	Topics  []string
	Pattern string
}

// compiled is a subscription ready to match.
type compiled struct {
	topics map[string]bool
	re     *regexp.Regexp
}

func compile(s Subscription) (compiled, error) {
	c := compiled{topics: make(map[string]bool, len(s.Topics))}
	for _, t := range s.Topics {
		c.topics[t] = true
	}
	if s.Pattern != "" {
		re, err := regexp.Compile("^(?:" + s.Pattern + ")$")
		if err != nil {
			return c, invalid("topic pattern: %v", err)
		}
		c.re = re
	}
	if len(c.topics) == 0 && c.re == nil {
		return c, invalid("a subscription needs topics or a topic pattern")
	}
	return c, nil
}

// matches reports whether topic is subscribed. Internal topics ("__")
// match only by name.
func (c compiled) matches(topic string) bool {
	if c.topics[topic] {
		return true
	}
	return c.re != nil && !strings.HasPrefix(topic, "__") && c.re.MatchString(topic)
}

// Committed is a committed offset.
type Committed struct {
	Offset     int64
	Metadata   string
	CommitTime int64 // unix ms
}

// OffsetCommit is one offset to commit.
type OffsetCommit struct {
	TP
	Offset   int64
	Metadata string
}

// Defaults.
const (
	DefaultSessionTimeout = 45 * time.Second
	MinSessionTimeout     = 1 * time.Second
	MaxSessionTimeout     = 30 * time.Minute
)

// heartbeatInterval is what members are told: a third of the session
// timeout, at most 5 s.
func heartbeatInterval(session time.Duration) time.Duration {
	return min(session/3, 5*time.Second)
}

func itoa(v int32) string { return strconv.FormatInt(int64(v), 10) }
