package grpctransport

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// BenchmarkWake: three nodes over gRPC on loopback, one partition, one
// acks=all produce every 300ms. With a 20ms tick the group quiesces
// between produces (after three idle ticks), so every produce wakes it;
// with a 1s tick it never quiesces. Same idle gaps, same disk: the
// difference is the cost of waking.
//
//	go test -run=^$ -bench=Wake -benchtime=30x ./replication/grpctransport/
func BenchmarkWake(b *testing.B) {
	for _, tick := range []time.Duration{20 * time.Millisecond, time.Second} {
		b.Run(fmt.Sprintf("tick=%v", tick), func(b *testing.B) {
			c := &cluster{tb: b, addrs: map[uint64]string{}, nodes: map[uint64]*node{}}
			for id := uint64(1); id <= 3; id++ {
				c.startHost(id, b.TempDir(), tick)
			}
			defer func() {
				for id := uint64(1); id <= 3; id++ {
					c.stop(id)
				}
			}()
			for id := uint64(1); id <= 3; id++ {
				spec := replication.PartitionSpec{GroupID: 1, Dir: "g1", Voters: []uint64{1, 2, 3}}
				if _, err := c.nodes[id].host.OpenPartition(spec); err != nil {
					b.Fatal(err)
				}
			}
			var leader *replication.Partition
			for deadline := time.Now().Add(60 * time.Second); leader == nil; time.Sleep(5 * time.Millisecond) {
				for id := uint64(1); id <= 3; id++ {
					if p, _ := c.nodes[id].host.Partition(1); p.IsLeader() {
						leader = p
					}
				}
				if time.Now().After(deadline) {
					b.Fatal("no leader")
				}
			}
			batch := replication.ProduceBatch{Data: make([]byte, 1024), Records: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				time.Sleep(300 * time.Millisecond)
				t0 := time.Now()
				if _, err := leader.Produce(ctx, batch, replication.AcksAll); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}
