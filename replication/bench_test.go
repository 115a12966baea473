package replication

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkProduce measures one-node produce throughput: 1 KiB batches,
// acks=all (every acknowledgement durable: fsync through the group
// commit), concurrent producers spread over the partitions.
//
//	go test -run=^$ -bench=Produce -benchtime=20000x ./replication/
func BenchmarkProduce(b *testing.B) {
	for _, parts := range []int{1, 6} {
		for _, producers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("partitions=%d/producers=%d", parts, producers), func(b *testing.B) {
				benchProduce(b, parts, producers)
			})
		}
	}
}

// BenchmarkProduceThreeNodes is the same workload on three in-process
// nodes (MemNetwork, each node with its own directory and group commit):
// every acknowledged batch is durable on two of them.
func BenchmarkProduceThreeNodes(b *testing.B) {
	for _, parts := range []int{1, 6} {
		b.Run(fmt.Sprintf("partitions=%d/producers=64", parts), func(b *testing.B) {
			benchProduceNodes(b, 3, parts, 64)
		})
	}
}

func benchProduce(b *testing.B, parts, producers int) { benchProduceNodes(b, 1, parts, producers) }

func benchProduceNodes(b *testing.B, nodes, parts, producers int) {
	c := newTestCluster(b, nodes, false)
	ps := make([]*Partition, parts)
	for g := 1; g <= parts; g++ {
		c.open(uint64(g))
		_, ps[g-1] = c.leader(uint64(g))
	}
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(i)
	}
	batch := ProduceBatch{Data: payload, Records: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	ctx := testCtx(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for w := 0; w < producers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := ps[w%parts]
			for next.Add(1) <= int64(b.N) {
				if _, err := p.Produce(ctx, batch, AcksAll); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	_, lp := c.leader(1)
	st := lp.h.syncer.Stats()
	b.ReportMetric(float64(b.N)/float64(max(1, st.Cycles)), "batches/cycle")
	b.ReportMetric(float64(st.Fsyncs)/float64(max(1, st.Cycles)), "fsyncs/cycle")
}

// BenchmarkRead measures Partition.Read of 16 KiB batches from a one-node
// partition (1 MiB per call, page cache warm).
//
//	go test -run=^$ -bench=Read -benchtime=2000x ./replication/
func BenchmarkRead(b *testing.B) {
	c := newTestCluster(b, 1, false)
	c.open(1)
	_, p := c.leader(1)
	ctx := testCtx(b)
	batch := ProduceBatch{Data: make([]byte, 16<<10), Records: 16, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	const batches = 1024
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < batches/16; i++ {
				if _, err := p.Produce(ctx, batch, AcksAll); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	hw := p.HighWatermark()
	b.SetBytes(1 << 20)
	b.ResetTimer()
	off := uint64(0)
	for i := 0; i < b.N; i++ {
		bs, err := p.Read(off, 1<<20)
		if err != nil || len(bs) == 0 {
			b.Fatalf("read at %d: %v", off, err)
		}
		off = bs[len(bs)-1].NextOffset()
		if off >= hw {
			off = 0
		}
	}
}
