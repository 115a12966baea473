package replication

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkIdleGroups measures the CPU three in-process nodes spend on
// 1000 idle groups (every group on every node: ticks, heartbeats and their
// responses) over one second per iteration; reported as the fraction of
// one core.
//
//	go test -run=^$ -bench=IdleGroups -benchtime=3x ./replication/
func BenchmarkIdleGroups(b *testing.B) {
	const groups = 1000
	c := newTestClusterWith(b, 3, false, func(cfg *HostConfig) { cfg.TickInterval = 100 * time.Millisecond })
	for g := uint64(1); g <= groups; g++ {
		c.open(g)
	}
	for g := uint64(1); g <= groups; g++ {
		c.leader(g)
	}
	time.Sleep(time.Second)
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
	used, wall := cpu()-start, time.Since(t0)
	b.ReportMetric(float64(used)/float64(wall), "cores")
}
