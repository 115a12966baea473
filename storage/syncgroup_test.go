package storage

import (
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// TestSyncGroupSharesFlushes holds the first flush cycle inside its fsync
// while 50 more logs ask for a sync: the next cycle must serve all 50 with
// one fsync each, or with one syncfs (SyncAuto, all on one filesystem).
func TestSyncGroupSharesFlushes(t *testing.T) {
	for _, mode := range []SyncMode{SyncFdatasync, SyncAuto} {
		t.Run(mode.String(), func(t *testing.T) { testSyncGroupSharesFlushes(t, mode) })
	}
}

func testSyncGroupSharesFlushes(t *testing.T, mode SyncMode) {
	fs := faultfs.New()
	g := NewSyncGroup(WithSyncParallelism(4), WithSyncMode(mode))
	defer g.Close()
	const n = 51
	logs := make([]*Log, n)
	for i := range logs {
		logs[i] = mustOpen(t, name("/g/%d", i), Options{FS: fs, Syncer: g, PreallocateBytes: 4 << 10})
		defer logs[i].Close()
		mustAppend(t, logs[i], batchEntry(1, 1, 1, 1, 10))
	}
	release := make(chan struct{})
	var once sync.Once
	held := make(chan struct{})
	var segSyncs atomic.Int64 // fsyncs of segment files
	fs.SetRule(func(op faultfs.Op, path string, _ int) (int, error) {
		if op == faultfs.OpSync && filepath.Ext(path) == segSuffix {
			segSyncs.Add(1)
			once.Do(func() { close(held); <-release })
		}
		return 0, nil
	})
	var wg sync.WaitGroup
	errs := make([]error, n)
	wg.Go(func() { errs[0] = logs[0].Sync() })
	<-held
	for i := 1; i < n; i++ {
		wg.Go(func() { errs[i] = logs[i].Sync() })
	}
	deadline := time.Now().Add(30 * time.Second) // failure guard only
	for {
		g.mu.Lock()
		k := len(g.mu.pending)
		g.mu.Unlock()
		if k == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d logs waiting", k)
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
	}
	st := g.Stats()
	if st.Cycles != 2 || st.Fsyncs != n {
		t.Fatalf("stats %+v, want 2 cycles and %d log flushes", st, n)
	}
	wantSegSyncs, wantSyncfs := int64(n), 0
	if mode == SyncAuto {
		wantSegSyncs, wantSyncfs = 1, 1 // the held single-log cycle, then one syncfs
	}
	if got := segSyncs.Load(); got != wantSegSyncs || fs.Syncfs() != wantSyncfs || st.Syncfs != uint64(wantSyncfs) {
		t.Fatalf("%d segment fsyncs and %d syncfs (stats %d), want %d and %d", got, fs.Syncfs(), st.Syncfs, wantSegSyncs, wantSyncfs)
	}
	// Everything is durable.
	crashed := fs.Crash()
	for i := range logs {
		l := mustOpen(t, name("/g/%d", i), Options{FS: crashed})
		if last := must[uint64](t)(l.LastIndex()); last != 1 {
			t.Fatalf("log %d: last %d after crash", i, last)
		}
		l.Close()
	}
	// A synced log does not fsync again.
	before := fs.Syncs()
	if err := logs[3].Sync(); err != nil {
		t.Fatal(err)
	}
	if fs.Syncs() != before || fs.Syncfs() != wantSyncfs {
		t.Fatal("clean log fsynced")
	}
}

func TestSyncGroupClose(t *testing.T) {
	g := NewSyncGroup()
	l := mustOpen(t, "/c", Options{FS: faultfs.New(), Syncer: g})
	defer l.Close()
	mustAppend(t, l, batchEntry(1, 1, 1, 1, 10))
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != ErrClosed {
		t.Fatalf("sync after group close: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSyncGroupLeaderFlushesInline: a Sync that finds no cycle running
// fsyncs on its own goroutine (no handoff to the flusher and back); Syncs
// arriving during its cycle are served by the next one, which the flusher
// runs, and Close waits for it.
func TestSyncGroupLeaderFlushesInline(t *testing.T) {
	fs := faultfs.New()
	g := NewSyncGroup(WithSyncMode(SyncFdatasync))
	a := mustOpen(t, "/a", Options{FS: fs, Syncer: g})
	defer a.Close()
	b := mustOpen(t, "/b", Options{FS: fs, Syncer: g})
	defer b.Close()
	mustAppend(t, a, batchEntry(1, 1, 1, 1, 10))
	mustAppend(t, b, batchEntry(1, 1, 1, 1, 10))
	held, release := make(chan struct{}), make(chan struct{})
	var inline, bSynced atomic.Bool
	fs.SetRule(func(op faultfs.Op, path string, _ int) (int, error) {
		if op != faultfs.OpSync || filepath.Ext(path) != segSuffix {
			return 0, nil
		}
		buf := make([]byte, 64<<10)
		stack := string(buf[:runtime.Stack(buf, false)])
		if filepath.Dir(path) == "/a" {
			inline.Store(strings.Contains(stack, "storage.(*Log).Sync("))
			close(held)
			<-release
		} else {
			bSynced.Store(true)
		}
		return 0, nil
	})
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { errA = a.Sync() })
	<-held
	wg.Go(func() { errB = b.Sync() })
	deadline := time.Now().Add(30 * time.Second) // failure guard only
	for {
		g.mu.Lock()
		k := len(g.mu.pending)
		g.mu.Unlock()
		if k == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b's sync never waited")
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !inline.Load() {
		t.Fatal("the leader's fsync ran on another goroutine")
	}
	if !bSynced.Load() || g.Stats().Cycles != 2 {
		t.Fatalf("b not flushed by a second cycle: %+v", g.Stats())
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSyncGroupNextSyncfsDoesNotWaitForCompletion holds the completion of
// a syncfs cycle (the directory fsync of logs that rolled) and checks that
// the flusher runs the next cycle's syncfs meanwhile, and that the first
// cycle's syncs return only once their completion is done.
func TestSyncGroupNextSyncfsDoesNotWaitForCompletion(t *testing.T) {
	fs := faultfs.New()
	g := NewSyncGroup()
	defer g.Close()
	open := func(dir string) *Log {
		l := mustOpen(t, dir, Options{FS: fs, Syncer: g, SegmentBytes: 256})
		t.Cleanup(func() { l.Close() })
		mustAppend(t, l, batchEntry(1, 1, 1, 1, 10))
		return l
	}
	b1, b2, a1, a2 := open("/b/1"), open("/b/2"), open("/a/1"), open("/a/2")
	for _, err := range syncTogether(g, b1, b2, a1, a2) {
		if err != nil {
			t.Fatal(err)
		}
	}
	// a1 and a2 roll to a new segment: their next flush fsyncs their
	// directories too, in the completion.
	mustAppend(t, a1, batchEntry(2, 1, 1, 2, 300))
	mustAppend(t, a2, batchEntry(2, 1, 1, 2, 300))
	release := make(chan struct{})
	var held atomic.Int32
	fs.SetRule(func(op faultfs.Op, path string, _ int) (int, error) {
		if op == faultfs.OpSyncDir && strings.HasPrefix(path, "/a/") {
			if held.Add(1) == 1 {
				<-release
			}
		}
		return 0, nil
	})
	syncfs0 := fs.Syncfs()
	aDone := make(chan []error, 1)
	go func() { aDone <- syncTogether(g, a1, a2) }()
	deadline := time.Now().Add(30 * time.Second) // failure guard only
	for held.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first cycle's completion never started")
		}
		runtime.Gosched()
	}
	mustAppend(t, b1, batchEntry(2, 1, 1, 2, 10))
	mustAppend(t, b2, batchEntry(2, 1, 1, 2, 10))
	bDone := make(chan []error, 1)
	go func() { bDone <- syncTogether(g, b1, b2) }()
	// Completions run in order: b's waits for a's, but its syncfs runs.
	for fs.Syncfs()-syncfs0 < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the next cycle's syncfs waited for the held completion")
		}
		runtime.Gosched()
	}
	select {
	case errs := <-aDone:
		t.Fatalf("the first cycle's syncs returned before their completion: %v", errs)
	default:
	}
	close(release)
	for _, ch := range []chan []error{aDone, bDone} {
		for _, err := range <-ch {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}
