package clients_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// waitAssigned polls gc until its assignment has n partitions.
func waitAssigned(t *testing.T, ctx context.Context, gc *clients.GroupConsumer, n int) []clients.TopicPartition {
	t.Helper()
	for {
		if a := gc.Assigned(); len(a) == n {
			return a
		}
		pctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, _ = gc.Poll(pctx)
		cancel()
		if ctx.Err() != nil {
			t.Fatalf("assignment never reached %d partitions: %v", n, gc.Assigned())
		}
	}
}

// TestGroupConsumerStaticRestart: a static member that restarts within its session
// gets its partitions back, and the other member's partitions never move. A second
// process with the same instance id replaces the first, which stops.
func TestGroupConsumerStaticRestart(t *testing.T) {
	n := servertest.Start(t, servertest.Config(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := n.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "s", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	brokers := clients.Brokers(n.Server.Addr())
	join := func(instance string) *clients.GroupConsumer {
		gc, err := clients.NewGroupConsumer("static", clients.GroupConfig{Topics: []string{"s"}, InstanceID: instance,
			SessionTimeout: time.Minute}, brokers, clients.FetchMaxWait(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		return gc
	}
	a := join("host-a")
	waitAssigned(t, ctx, a, 4)
	b := join("host-b")
	waitAssigned(t, ctx, b, 2)
	aParts := waitAssigned(t, ctx, a, 2)
	bParts := b.Assigned()

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2 := join("host-a")
	defer a2.Close()
	if got := waitAssigned(t, ctx, a2, 2); !slices.Equal(got, aParts) {
		t.Fatalf("restarted static member got %v, had %v", got, aParts)
	}
	if got := b.Assigned(); !slices.Equal(got, bParts) {
		t.Fatalf("the other member's partitions moved: %v, had %v", got, bParts)
	}

	// A duplicate instance id replaces b; b stops with STALE_MEMBER_EPOCH.
	b2 := join("host-b")
	defer b2.Close()
	waitAssigned(t, ctx, b2, 2)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := b.Poll(pctx)
		pcancel()
		if errors.Is(err, &clients.Error{Reason: sluicev1.ErrorReason_ERROR_REASON_STALE_MEMBER_EPOCH}) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the replaced member never stopped")
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
