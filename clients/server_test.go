package clients_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/clients"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// TestAgainstServer runs produce/consume round trips for every codec against a real
// cluster named by SLUICE_TEST_BROKERS; it is skipped without one.
func TestAgainstServer(t *testing.T) {
	env := os.Getenv("SLUICE_TEST_BROKERS")
	if env == "" {
		t.Skip("SLUICE_TEST_BROKERS not set")
	}
	brokers := clients.Brokers(strings.Split(env, ",")...)
	ctx := guard(t)
	admin, err := clients.NewAdmin(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for c := sluicev1.Compression_COMPRESSION_NONE; c <= sluicev1.Compression_COMPRESSION_ZSTD; c++ {
		t.Run(c.String(), func(t *testing.T) {
			topic := fmt.Sprintf("clients-test-%08x", rand.Uint32())
			if _, err := admin.CreateTopic(ctx, clients.TopicSpec{Name: topic, Partitions: 3}); err != nil {
				t.Fatal(err)
			}
			defer admin.DeleteTopic(ctx, topic) //nolint:errcheck // best effort
			p, err := clients.NewProducer(brokers, clients.Compression(c))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			sent := produceN(t, p, topic, 100)
			cons, err := clients.NewConsumer(brokers)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			if err := cons.AssignTopic(ctx, topic, clients.AtStart()); err != nil {
				t.Fatal(err)
			}
			got := pollN(t, ctx, cons, 100)
			byKey := map[string]*clients.Record{}
			for _, r := range got {
				byKey[string(r.Key)] = r
			}
			for _, s := range sent {
				r := byKey[string(s.Key)]
				if r == nil || !bytes.Equal(r.Value, s.Value) || r.Offset != s.Offset || r.Partition != s.Partition ||
					len(r.Headers) != 1 || r.Timestamp.UnixMilli() != s.Timestamp.UnixMilli() {
					t.Fatalf("sent %+v, consumed %+v", s, r)
				}
			}
		})
	}
}
