package storage

import (
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/storage/vfs"
)

// BenchmarkFlushCeiling puts the group commit of many partitions next to
// its ceiling in one run: it alternates short phases of the 100-partition
// AppendSync loop (one goroutine per log: Append one entry, Sync) with
// phases of the raw loop of BenchmarkRawSyncfs over as many plain files as
// the logs' cycles flushed on average (append size bytes to each, one
// syncfs), plain and preallocated 4 MiB ahead as the logs' segments are.
// Phases of 300 ms interleave the three, so load from elsewhere on the
// machine weighs on all of them alike. Reported side by side:
//
//	flushes/s, logs/flush, records/s  the logs' group commit
//	raw-cycles/s, raw-files/s         raw loop, plain files
//	falloc-cycles/s                   raw loop, preallocated files
//	%raw, %falloc                     flushes/s of the logs against each
//
// The files of the raw loop match logs/flush rounded, measured over the
// phases so far.
func BenchmarkFlushCeiling(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		b.Run(fmt.Sprintf("size=%dKiB/partitions=100", size>>10), func(b *testing.B) {
			benchFlushCeiling(b, size, 100)
		})
	}
}

const ceilingPhase = 300 * time.Millisecond

func benchFlushCeiling(b *testing.B, size, parts int) {
	dir := b.TempDir()
	g := NewSyncGroup()
	defer g.Close()
	logs := make([]*Log, parts)
	for i := range logs {
		l, err := Open(fmt.Sprintf("%s/p%d", dir, i), Options{Syncer: g, SegmentBytes: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		logs[i] = l
	}
	raw := newRawFiles(b, dir+"/raw", parts, false)
	defer raw.close()
	falloc := newRawFiles(b, dir+"/falloc", parts, true)
	defer falloc.close()
	data := payload(1, size)

	// The partitions' goroutines run while gate is open; a phase ends when
	// they have all stopped.
	var (
		gate    atomic.Bool
		next    atomic.Int64 // records claimed
		running sync.WaitGroup
		failed  atomic.Bool
	)
	idx := make([]uint64, parts)
	phase := func() {
		gate.Store(true)
		for i, l := range logs {
			running.Go(func() {
				for gate.Load() && next.Add(1) <= int64(b.N) {
					idx[i]++
					e := Entry{Index: idx[i], Term: 1, Records: 1, MaxTimestamp: int64(idx[i]), Data: data}
					if err := l.Append([]Entry{e}); err != nil {
						b.Error(err)
						failed.Store(true)
						return
					}
					if err := l.Sync(); err != nil {
						b.Error(err)
						failed.Store(true)
						return
					}
				}
			})
		}
		// The phase ends after ceilingPhase, or sooner when b.N records
		// are done.
		stopped := make(chan struct{})
		go func() { running.Wait(); close(stopped) }()
		select {
		case <-time.After(ceilingPhase):
		case <-stopped:
		}
		gate.Store(false)
		<-stopped
	}
	// Warm up: every log's first Sync also fsyncs its new directory.
	for i, l := range logs {
		idx[i] = 1
		if err := l.Append([]Entry{{Index: 1, Term: 1, Records: 1, MaxTimestamp: 1, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
	for _, l := range logs {
		if err := l.Sync(); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	var logSecs, rawSecs, fallocSecs float64
	var records, rawCycles, rawFiles, fallocCycles int64
	var rawBusy time.Duration
	var st SyncStats
	for next.Load() < int64(b.N) && !failed.Load() {
		st0, n0, t0 := g.Stats(), min(next.Load(), int64(b.N)), time.Now()
		phase()
		logSecs += time.Since(t0).Seconds()
		st1 := g.Stats()
		records += min(next.Load(), int64(b.N)) - n0
		st.Cycles += st1.Cycles - st0.Cycles
		st.Fsyncs += st1.Fsyncs - st0.Fsyncs
		st.Syncfs += st1.Syncfs - st0.Syncfs
		st.SyncfsTime += st1.SyncfsTime - st0.SyncfsTime

		k := 1
		if st.Cycles > 0 {
			k = max(1, int(math.Round(float64(st.Fsyncs)/float64(st.Cycles))))
		}
		c, secs, busy := raw.run(b, k, data, ceilingPhase)
		rawCycles, rawFiles, rawSecs, rawBusy = rawCycles+c, rawFiles+c*int64(k), rawSecs+secs, rawBusy+busy
		c, secs, _ = falloc.run(b, k, data, ceilingPhase)
		fallocCycles, fallocSecs = fallocCycles+c, fallocSecs+secs
	}
	b.StopTimer()
	if st.Cycles == 0 || rawCycles == 0 {
		return
	}
	flushes := float64(st.Cycles) / logSecs
	rawRate := float64(rawCycles) / rawSecs
	fallocRate := float64(fallocCycles) / fallocSecs
	// ns/op counts the logs' phases only.
	b.ReportMetric(logSecs*1e9/float64(max(records, 1)), "ns/op")
	b.ReportMetric(flushes, "flushes/s")
	b.ReportMetric(float64(st.Fsyncs)/float64(st.Cycles), "logs/flush")
	b.ReportMetric(float64(st.Syncfs)/float64(st.Cycles), "syncfs/flush")
	b.ReportMetric(float64(records)/logSecs, "records/s")
	b.ReportMetric(rawRate, "raw-cycles/s")
	b.ReportMetric(float64(rawFiles)/rawSecs, "raw-files/s")
	b.ReportMetric(fallocRate, "falloc-cycles/s")
	b.ReportMetric(100*flushes/rawRate, "%raw")
	// How much of the wall time a syncfs ran: the rest is the cycles' own
	// work (and, for the raw loop, its writes).
	b.ReportMetric(100*st.SyncfsTime.Seconds()/logSecs, "%syncfs-busy")
	b.ReportMetric(100*rawBusy.Seconds()/rawSecs, "%raw-syncfs-busy")
	b.ReportMetric(float64(st.SyncfsTime.Microseconds())/float64(max(st.Syncfs, 1)), "µs/syncfs")
	b.ReportMetric(float64(rawBusy.Microseconds())/float64(rawCycles), "raw-µs/syncfs")
	b.ReportMetric(100*flushes/fallocRate, "%falloc")
}

// rawFiles is the raw loop of BenchmarkRawSyncfs over a pool of files.
type rawFiles struct {
	h      vfs.Filesystem
	fs     []File
	off    []int64
	alloc  []int64 // preallocated up to here; nil: no preallocation
	falloc bool
}

func newRawFiles(b *testing.B, dir string, n int, falloc bool) *rawFiles {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	h, err := OSFS{}.OpenFilesystem(dir)
	if err != nil {
		b.Skip("no syncfs:", err)
	}
	r := &rawFiles{h: h, fs: make([]File, n), off: make([]int64, n), alloc: make([]int64, n), falloc: falloc}
	for i := range r.fs {
		f, err := OSFS{}.OpenFile(fmt.Sprintf("%s/f%d", dir, i), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		r.fs[i] = f
	}
	if err := h.Sync(); err != nil {
		b.Fatal(err)
	}
	return r
}

// run appends data to the first k files and syncfs, in a loop, for d; it
// returns the cycles, the seconds they took and the time in syncfs.
func (r *rawFiles) run(b *testing.B, k int, data []byte, d time.Duration) (int64, float64, time.Duration) {
	k = min(k, len(r.fs))
	start := time.Now()
	var cycles int64
	var busy time.Duration
	for time.Since(start) < d {
		for i, f := range r.fs[:k] {
			if r.falloc && r.off[i]+int64(len(data)) > r.alloc[i] {
				// 4 MiB ahead, as Options.PreallocateBytes does by default.
				if err := f.(vfs.Preallocator).Preallocate(r.alloc[i], 4<<20, false); err != nil {
					b.Skip("no fallocate:", err)
				}
				r.alloc[i] += 4 << 20
			}
			if _, err := f.WriteAt(data, r.off[i]); err != nil {
				b.Fatal(err)
			}
			r.off[i] += int64(len(data))
		}
		t0 := time.Now()
		if err := r.h.Sync(); err != nil {
			b.Fatal(err)
		}
		busy += time.Since(t0)
		cycles++
	}
	return cycles, time.Since(start).Seconds(), busy
}

func (r *rawFiles) close() {
	for _, f := range r.fs {
		f.Close()
	}
	r.h.Close()
}
