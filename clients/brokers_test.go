package clients

import (
	"slices"
	"testing"
)

// Calls try first the brokers that answered, then those that last timed out,
// the one that timed out most recently last: after three leaders were paused in
// turn, the one paused last is the one still down.
func TestBrokerOrderTriesRecentTimeoutsLast(t *testing.T) {
	cfg := defaults()
	cfg.brokers = []string{"a", "b", "c", "d"}
	c := newCluster(&cfg)
	c.setSuspect("c", true)
	c.setSuspect("a", true)
	c.setSuspect("b", true)
	c.setSuspect("b", false) // answered since
	c.setSuspect("d", true)
	for range 20 { // the start is random
		got := c.brokerOrder()
		if !slices.Equal(got, []string{"b", "c", "a", "d"}) {
			t.Fatalf("order %v, want [b c a d]", got)
		}
	}
}
