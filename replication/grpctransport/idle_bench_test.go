package grpctransport

import (
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/replication"
)

// BenchmarkIdleGroups: three nodes over gRPC on loopback, 1000 partitions
// each replicated on all three (3000 replicas), idle after a first write;
// reports the CPU of the whole process as a fraction of one core.
//
//	go test -run=^$ -bench=IdleGroups -benchtime=3x ./replication/grpctransport/
func BenchmarkIdleGroups(b *testing.B) {
	const groups = 1000
	c := &cluster{tb: b, addrs: map[uint64]string{}, nodes: map[uint64]*node{}}
	for id := uint64(1); id <= 3; id++ {
		c.startHost(id, b.TempDir(), 100*time.Millisecond)
	}
	defer func() {
		for id := uint64(1); id <= 3; id++ {
			c.stop(id)
		}
	}()
	for g := uint64(1); g <= groups; g++ {
		for id := uint64(1); id <= 3; id++ {
			if _, err := c.nodes[id].host.OpenPartition(replication.PartitionSpec{GroupID: g + 1, Dir: "g" + itoa(g), Voters: []uint64{1, 2, 3}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(5 * time.Second) // elections, then quiescence
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	start, t0 := cpu(), time.Now()
	for i := 0; i < b.N; i++ {
		time.Sleep(time.Second)
	}
	b.ReportMetric(float64(cpu()-start)/float64(time.Since(t0)), "cores")
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
