package grpctransport

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// BenchmarkProduce: three nodes over gRPC on loopback (one process, one
// disk), RF=3, acks=all, 1 KiB batches, 64 concurrent producers.
//
//	go test -run=^$ -bench=Produce -benchtime=20000x ./replication/grpctransport/
func BenchmarkProduce(b *testing.B) {
	for _, parts := range []int{1, 6} {
		b.Run(fmt.Sprintf("partitions=%d/producers=64", parts), func(b *testing.B) {
			c := &cluster{tb: b, addrs: map[uint64]string{}, nodes: map[uint64]*node{}}
			for id := uint64(1); id <= 3; id++ {
				c.startHost(id, b.TempDir(), 100*time.Millisecond)
			}
			defer func() {
				for id := uint64(1); id <= 3; id++ {
					c.stop(id)
				}
			}()
			leaders := make([]*replication.Partition, parts)
			for g := 1; g <= parts; g++ {
				for id := uint64(1); id <= 3; id++ {
					spec := replication.PartitionSpec{GroupID: uint64(g), Dir: "g" + itoa(uint64(g)), Voters: []uint64{1, 2, 3}}
					if _, err := c.nodes[id].host.OpenPartition(spec); err != nil {
						b.Fatal(err)
					}
				}
			}
			for g := 1; g <= parts; g++ {
				deadline := time.Now().Add(30 * time.Second)
				for leaders[g-1] == nil {
					for id := uint64(1); id <= 3; id++ {
						if p, _ := c.nodes[id].host.Partition(uint64(g)); p.IsLeader() {
							leaders[g-1] = p
						}
					}
					if time.Now().After(deadline) {
						b.Fatal("no leader")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			batch := replication.ProduceBatch{Data: make([]byte, 1024), Records: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(1024)
			b.ResetTimer()
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := leaders[w%parts]
					for next.Add(1) <= int64(b.N) {
						for {
							_, err := p.Produce(ctx, batch, replication.AcksAll)
							if err == nil {
								break
							}
							if ctx.Err() != nil {
								b.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
		})
	}
}
