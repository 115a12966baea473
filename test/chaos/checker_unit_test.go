package chaos

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The checker must fail on each kind of violation: synthetic histories, no cluster.

func goodHistory() (historySnapshot, map[int]map[int32]*replicaLog) {
	h := historySnapshot{failed: map[string]error{}, sent: map[string]int32{}}
	log := map[int64]string{}
	for i, v := range []string{"w0-000000000", "w1-000000000", "w0-000000001", "w1-000000001"} {
		h.sent[v] = 0
		h.acks = append(h.acks, ack{part: 0, off: int64(i), val: v, at: time.Now()})
		h.seen = append(h.seen, seen{part: 0, off: int64(i), val: v})
		log[int64(i)] = v
	}
	h.sent["w2-000000000"] = 0
	h.failed["w2-000000000"] = errors.New("timeout")
	replicas := map[int]map[int32]*replicaLog{}
	for n := 1; n <= 3; n++ {
		vals := map[int64]string{}
		for k, v := range log {
			vals[k] = v
		}
		replicas[n] = map[int32]*replicaLog{0: {start: 0, hw: 4, vals: vals}}
	}
	return h, replicas
}

func TestCheckerAcceptsAGoodHistory(t *testing.T) {
	h, replicas := goodHistory()
	if r := check(h, replicas); !r.ok() {
		t.Fatalf("violations in a good history:\n%s", r)
	}
	// A record whose produce failed may be in the log (outcome unknown).
	for _, rl := range []*replicaLog{replicas[1][0], replicas[2][0], replicas[3][0]} {
		rl.vals[4] = "w2-000000000"
		rl.hw = 5
	}
	if r := check(h, replicas); !r.ok() {
		t.Fatalf("violations with an unknown outcome present:\n%s", r)
	}
	// Retention removed the start on one replica.
	delete(replicas[2][0].vals, 0)
	replicas[2][0].start = 1
	if r := check(h, replicas); !r.ok() {
		t.Fatalf("violations with retention:\n%s", r)
	}
}

func TestCheckerFindsViolations(t *testing.T) {
	cases := []struct {
		kind   string
		mutate func(h *historySnapshot, r map[int]map[int32]*replicaLog)
	}{
		{"acknowledged record lost", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			for n := 1; n <= 3; n++ {
				delete(r[n][0].vals, 3)
				r[n][0].hw = 3
			}
		}},
		{"replicas disagree on a record", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			r[2][0].vals[1] = "w2-000000000"
		}},
		{"replicas disagree on the high watermark", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			r[3][0].hw = 3
		}},
		{"duplicate", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			for n := 1; n <= 3; n++ {
				r[n][0].vals[4] = "w1-000000001"
				r[n][0].hw = 5
			}
		}},
		{"out of order", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			for n := 1; n <= 3; n++ {
				r[n][0].vals[0], r[n][0].vals[2] = r[n][0].vals[2], r[n][0].vals[0]
			}
			h.acks[0].off, h.acks[2].off = 2, 0
			h.seen = nil
		}},
		{"consumed record gone", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			h.seen = append(h.seen, seen{part: 0, off: 7, val: "w2-000000000"})
		}},
		{"consumed record changed", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			h.seen = append(h.seen, seen{part: 0, off: 1, val: "w2-000000000"})
		}},
		{"hole in a log", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			delete(r[1][0].vals, 2)
		}},
		{"record never sent", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			for n := 1; n <= 3; n++ {
				r[n][0].vals[4] = "w9-000000000"
				r[n][0].hw = 5
			}
		}},
		{"offset acknowledged twice", func(h *historySnapshot, r map[int]map[int32]*replicaLog) {
			h.acks = append(h.acks, ack{part: 0, off: 1, val: "w2-000000000"})
		}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.kind, " ", "_"), func(t *testing.T) {
			h, replicas := goodHistory()
			tc.mutate(&h, replicas)
			r := check(h, replicas)
			if r.counts[tc.kind] == 0 {
				t.Fatalf("want a %q violation, got:\n%s", tc.kind, r)
			}
		})
	}
}
