package storage

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/storage/vfs"
)

// Benchmarks run on the OS filesystem under the test's temp dir (set
// TMPDIR to measure another disk). Figures in perf.md come from
//
//	go test -run '^$' -bench . -benchtime 2s ./storage/
//
// and BenchmarkFlushCeiling (bench_ceiling_test.go) puts the
// 100-partition flush rate next to its raw ceiling in one run.

func BenchmarkAppendSync(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 1 << 20} {
		for _, parts := range []int{1, 100} {
			b.Run(fmt.Sprintf("size=%dKiB/partitions=%d", size>>10, parts), func(b *testing.B) {
				benchAppendSync(b, size, parts, parts > 1)
			})
		}
		// One partition through a SyncGroup, as a node with one busy
		// partition runs it: the Sync caller flushes inline.
		b.Run(fmt.Sprintf("size=%dKiB/partitions=1/group", size>>10), func(b *testing.B) {
			benchAppendSync(b, size, 1, true)
		})
	}
}

func benchAppendSync(b *testing.B, size, parts int, group bool) {
	dir := b.TempDir()
	var g *SyncGroup
	if group {
		par := 16
		if v, err := strconv.Atoi(os.Getenv("STORAGE_SYNC_PARALLELISM")); err == nil {
			par = v
		}
		mode := SyncAuto
		if os.Getenv("STORAGE_SYNC_MODE") == "fdatasync" {
			mode = SyncFdatasync
		}
		g = NewSyncGroup(WithSyncParallelism(par), WithSyncMode(mode))
		defer g.Close()
	}
	// STORAGE_PREALLOC=off measures without preallocation, =keep with
	// FALLOC_FL_KEEP_SIZE.
	prealloc := int64(0)
	switch os.Getenv("STORAGE_PREALLOC") {
	case "off":
		prealloc = -1
	case "keep":
		defer func(v bool) { preallocKeepSize = v }(preallocKeepSize)
		preallocKeepSize = true
	}
	logs := make([]*Log, parts)
	for i := range logs {
		l, err := Open(fmt.Sprintf("%s/p%d", dir, i), Options{Syncer: g, SegmentBytes: 64 << 20, PreallocateBytes: prealloc})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		logs[i] = l
	}
	data := payload(1, size)
	// Warm up outside the timing: a log's first Sync also fsyncs its
	// directory (new files), and its first append reserves space.
	var warm sync.WaitGroup
	for _, l := range logs {
		warm.Go(func() {
			if err := l.Append([]Entry{{Index: 1, Term: 1, Records: 1, MaxTimestamp: 1, Data: data}}); err != nil {
				b.Error(err)
			}
			if err := l.Sync(); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()
	var st0 SyncStats
	if g != nil {
		st0 = g.Stats()
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, l := range logs {
		wg.Go(func() {
			idx := uint64(1)
			for next.Add(1) <= int64(b.N) {
				idx++
				if err := l.Append([]Entry{{Index: idx, Term: 1, Records: 1, MaxTimestamp: int64(idx), Data: data}}); err != nil {
					b.Error(err)
					return
				}
				if err := l.Sync(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	b.StopTimer()
	flushes := float64(b.N) // inline: one flush per Sync
	if g != nil {
		st := g.Stats()
		st.Cycles, st.Fsyncs, st.Syncfs = st.Cycles-st0.Cycles, st.Fsyncs-st0.Fsyncs, st.Syncfs-st0.Syncfs
		flushes = float64(st.Cycles)
		b.ReportMetric(float64(st.Fsyncs)/secs, "fsyncs/s")
		b.ReportMetric(float64(st.Fsyncs)/float64(st.Cycles), "logs/flush")
		b.ReportMetric(float64(st.Syncfs)/float64(st.Cycles), "syncfs/flush")
		if st.Syncfs > 0 {
			b.ReportMetric(100*(st.SyncfsTime-st0.SyncfsTime).Seconds()/secs, "%syncfs-busy")
		}
	}
	b.ReportMetric(flushes/secs, "flushes/s")
	b.ReportMetric(float64(b.N)/secs, "records/s")
}

// BenchmarkReadSequential reads 1 MiB entries from the page cache in
// order, as a consumer catching up would.
func BenchmarkReadSequential(b *testing.B) {
	const n = 64 // 64 MiB of data
	l, err := Open(b.TempDir(), Options{SegmentBytes: 16 << 20, CacheBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := payload(2, 1<<20)
	for i := uint64(1); i <= n; i++ {
		if err := l.Append([]Entry{{Index: i, Term: 1, Records: 1, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	for _, into := range []bool{false, true} {
		for _, maxBytes := range []int{1 << 20, 8 << 20} {
			name := fmt.Sprintf("maxBytes=%dMiB", maxBytes>>20)
			if into {
				name = "ReadInto/" + name
			}
			b.Run(name, func(b *testing.B) { benchReadSequential(b, l, n, maxBytes, into) })
		}
	}
}

// benchReadSequential reads the n entries of l in order, again and again,
// with Read (a fresh buffer per read) or ReadInto (one reused buffer, as a
// fetch that sends the data before the next read would).
func benchReadSequential(b *testing.B, l *Log, n uint64, maxBytes int, into bool) {
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	var buf []byte
	var dst []Batch
	if into {
		buf = make([]byte, maxBytes+64<<10)
	}
	b.ResetTimer()
	off := uint64(0)
	for i := 0; i < b.N; {
		var bs []Batch
		var err error
		if into {
			bs, err = l.ReadInto(dst, buf, off, n, maxBytes)
			dst = bs
		} else {
			bs, err = l.Read(off, n, maxBytes)
		}
		if err != nil {
			b.Fatal(err)
		}
		i += len(bs)
		off += uint64(len(bs))
		if off == n {
			off = 0
		}
	}
}

// BenchmarkEntries shows that Entries() costs the same whatever the log's
// size: 64 entries of 256 bytes from the cache and from the segment files
// of logs of 1,000 and 100,000 entries.
func BenchmarkEntries(b *testing.B) {
	for _, size := range []int{1_000, 100_000} {
		for _, cached := range []bool{true, false} {
			b.Run(fmt.Sprintf("log=%d/cached=%v", size, cached), func(b *testing.B) {
				cache := int64(-1)
				if cached {
					cache = 1 << 20
				}
				l, err := Open(b.TempDir(), Options{SegmentBytes: 4 << 20, CacheBytes: cache})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data := payload(3, 256)
				ents := make([]Entry, 0, 1000)
				for i := 1; i <= size; i++ {
					ents = append(ents, Entry{Index: uint64(i), Term: 1, Records: 1, Data: data})
					if len(ents) == cap(ents) {
						if err := l.Append(ents); err != nil {
							b.Fatal(err)
						}
						ents = ents[:0]
					}
				}
				lo := uint64(size - 100)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					es, err := l.Entries(lo, lo+64, 1<<30)
					if err != nil || len(es) != 64 {
						b.Fatal(len(es), err)
					}
				}
			})
		}
	}
}

// BenchmarkRawWriteSync is the baseline for BenchmarkAppendSync with 1 MiB
// entries on the same disk in the same run: 1 MiB write + fdatasync on a
// plain file, nothing else.
func BenchmarkRawWriteSync(b *testing.B) {
	f, err := OSFS{}.OpenFile(b.TempDir()+"/raw", os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	data := payload(1, 1<<20)
	b.SetBytes(1 << 20)
	var off int64
	for range b.N {
		if _, err := f.WriteAt(data, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(data))
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawSyncfs is the ceiling for BenchmarkAppendSync with 100
// partitions on the same disk in the same run: each cycle appends size
// bytes to each of files plain files, then makes them durable with one
// syncfs(2) (files=1: one fdatasync, as a cycle with one dirty log does).
// files=50 matches the logs/flush of the 100-partition runs.
func BenchmarkRawSyncfs(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, files := range []int{1, 50} {
			b.Run(fmt.Sprintf("size=%dKiB/files=%d", size>>10, files), func(b *testing.B) {
				benchRawSyncfs(b, size, files, false)
			})
			// The files preallocated first (fallocate, as the log's
			// active segments are).
			b.Run(fmt.Sprintf("size=%dKiB/files=%d/falloc", size>>10, files), func(b *testing.B) {
				benchRawSyncfs(b, size, files, true)
			})
		}
	}
}

func benchRawSyncfs(b *testing.B, size, files int, falloc bool) {
	dir := b.TempDir()
	fsys := OSFS{}
	h, err := fsys.OpenFilesystem(dir)
	if err != nil {
		b.Skip("no syncfs:", err)
	}
	defer h.Close()
	fs := make([]File, files)
	for i := range fs {
		f, err := fsys.OpenFile(fmt.Sprintf("%s/f%d", dir, i), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fs[i] = f
		if falloc {
			if err := f.(vfs.Preallocator).Preallocate(0, int64(b.N*size), false); err != nil {
				b.Skip("no fallocate:", err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
	data := payload(1, size)
	b.SetBytes(int64(size * files))
	b.ResetTimer()
	start := time.Now()
	var off int64
	for range b.N {
		for _, f := range fs {
			if _, err := f.WriteAt(data, off); err != nil {
				b.Fatal(err)
			}
		}
		off += int64(size)
		if files == 1 {
			err = fs[0].Sync()
		} else {
			err = h.Sync()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	secs := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/secs, "cycles/s")
	b.ReportMetric(float64(b.N*files)/secs, "files/s")
}
