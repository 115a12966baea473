package coordinator

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestChurnInvariants drives a group with random joins, leaves, crashes,
// static restarts, subscription and topic changes, and members that
// confirm revocations at random times, and checks after every step:
//   - no partition is owned (assigned or revoking) by two members;
//   - once every member has confirmed, every subscribed partition has an
//     owner and the group is stable.
func TestChurnInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { churn(t, seed) })
	}
}

func churn(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	now := time.Unix(1000, 0)
	topics := map[string]int32{"a": 7, "b": 3}
	assignor := []Assignor{AssignorRange, AssignorRoundRobin, AssignorUniformSticky}[seed%3]
	g := NewGroup("g", maps.Clone(topics))
	instances := 0
	for step := 0; step < 400; step++ {
		ids := slices.Sorted(maps.Keys(g.Members))
		pick := func() string { return ids[rng.IntN(len(ids))] }
		switch op := rng.IntN(10); {
		case op < 2 || len(ids) == 0:
			p := JoinParams{Sub: Subscription{Topics: []string{"a", "b"}}, Assignor: assignor, SessionTimeout: 10 * time.Second}
			if rng.IntN(3) == 0 {
				instances++
				p.InstanceID = fmt.Sprint("i", rng.IntN(instances))
			}
			if rng.IntN(4) == 0 {
				p.Sub = Subscription{Topics: []string{"a"}}
			}
			if _, _, err := g.Join(p, now); err != nil {
				t.Fatal(err)
			}
		case op == 2:
			if _, err := g.Leave(pick()); err != nil {
				t.Fatal(err)
			}
		case op == 3:
			if _, err := g.Disconnect(pick(), now); err != nil {
				t.Fatal(err)
			}
		case op == 4:
			// Time passes; one member stays silent and may be expelled.
			now = now.Add(time.Duration(rng.IntN(12)) * time.Second)
			silent := pick()
			for _, id := range ids {
				if id != silent && g.Members[id].Connected {
					_ = g.Heartbeat(id, g.Members[id].Epoch, now)
				}
			}
			g.Expire(now)
		case op == 5:
			m := g.Members[pick()]
			sub := Subscription{Topics: []string{"a", "b"}}
			if len(m.Sub.Topics) == 2 {
				sub = Subscription{Pattern: "b"}
			}
			if _, err := g.UpdateSubscription(m.ID, sub, now); err != nil {
				t.Fatal(err)
			}
		case op == 6:
			topics["a"] += int32(rng.IntN(2))
			if rng.IntN(5) == 0 {
				topics[fmt.Sprint("t", step)] = 2
			}
			g.SetTopics(maps.Clone(topics))
		case op == 7 && rng.IntN(4) == 0:
			g = rebuildQuiet(t, g, now)
		default:
			// Some members confirm their revocations.
			for _, id := range ids {
				if m := g.Members[id]; len(m.Revoking) > 0 && rng.IntN(2) == 0 {
					if _, err := g.Confirm(id, m.Epoch, now); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := ownershipInvariant(g); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if step%10 == 9 {
			settleAll(t, g, now)
			if err := coveredInvariant(g); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
}

func rebuildQuiet(t *testing.T, g *Group, now time.Time) *Group {
	ng := rebuild(t, g, now)
	ng.topics = g.topics
	return ng
}

// settleAll confirms every revocation until none is left.
func settleAll(t *testing.T, g *Group, now time.Time) {
	for range 1000 {
		done := true
		for _, id := range slices.Sorted(maps.Keys(g.Members)) {
			if m := g.Members[id]; len(m.Revoking) > 0 {
				done = false
				if _, err := g.Confirm(id, m.Epoch, now); err != nil {
					t.Fatal(err)
				}
			}
		}
		if done {
			return
		}
	}
	t.Fatal("revocations never settle")
}

// coveredInvariant: with members present and no revocation pending, every
// partition some member subscribes to is owned, and the group is stable.
func coveredInvariant(g *Group) error {
	if len(g.Members) == 0 {
		return nil
	}
	owned := map[TP]bool{}
	for _, m := range g.Members {
		for tp := range m.Assigned {
			owned[tp] = true
		}
	}
	for topic, n := range g.subscribedPartitions(g.topics) {
		for p := range n {
			if !owned[TP{topic, p}] {
				return fmt.Errorf("%s/%d has no owner", topic, p)
			}
		}
	}
	if s := g.State(); s != StateStable {
		return fmt.Errorf("settled group is %v", s)
	}
	return nil
}
