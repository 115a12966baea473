package storage

import (
	"errors"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/storage/faultfs"
)

// TestSyncfsErrorFailsEveryLogOfTheCycle: one syncfs error fails every log
// it flushed, for good; it is never retried, and the other logs of the
// filesystem go on with their own fdatasync, which reports their own
// errors.
func TestSyncfsErrorFailsEveryLogOfTheCycle(t *testing.T) {
	fs := faultfs.New()
	g := NewSyncGroup()
	defer g.Close()
	var logs []*Log
	for i := range 4 {
		l := mustOpen(t, name("/e/%d", i), Options{FS: fs, Syncer: g})
		defer l.Close()
		mustAppend(t, l, batchEntry(1, 1, 1, 1, 10))
		logs = append(logs, l)
	}
	for _, err := range syncTogether(g, logs[0], logs[1]) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if fs.Syncfs() != 1 {
		t.Fatalf("%d syncfs, want 1", fs.Syncfs())
	}
	syncfsCalls := 0
	fs.SetRule(func(op faultfs.Op, _ string, _ int) (int, error) {
		if op == faultfs.OpSyncfs {
			syncfsCalls++
			return 0, syscall.EIO
		}
		return 0, nil
	})
	for _, l := range logs[:2] {
		mustAppend(t, l, batchEntry(2, 1, 1, 2, 10))
	}
	for i, err := range syncTogether(g, logs[0], logs[1]) {
		if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrFailed) {
			t.Fatalf("log %d: sync after syncfs error: %v", i, err)
		}
	}
	// Sticky: the failed logs refuse writes and syncs without new I/O.
	for i, l := range logs[:2] {
		if err := l.Append([]Entry{batchEntry(3, 1, 1, 3, 10)}); !errors.Is(err, ErrFailed) {
			t.Fatalf("log %d: append after failure: %v", i, err)
		}
		if err := l.Sync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("log %d: sync after failure: %v", i, err)
		}
	}
	// The others (not in that cycle) flush by fdatasync from now on.
	syncs := fs.Syncs()
	for _, err := range syncTogether(g, logs[2], logs[3]) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if syncfsCalls != 1 {
		t.Fatalf("syncfs called %d times after its error, want 1 (never retried)", syncfsCalls)
	}
	if got := fs.Syncs() - syncs; got < 2 {
		t.Fatalf("%d fdatasyncs for two dirty logs", got)
	}
	crashed := fs.Crash()
	for i, want := range []uint64{1, 1, 1, 1} { // entry 2 of logs 0 and 1 may be lost
		l := mustOpen(t, name("/e/%d", i), Options{FS: crashed})
		if last := must[uint64](t)(l.LastIndex()); last < want {
			t.Fatalf("log %d: last %d after crash, want >= %d", i, last, want)
		}
		l.Close()
	}
}

// TestSyncfsOnlyForSharedFilesystems: syncfs flushes two or more dirty logs
// of one filesystem; a single dirty log, logs of different filesystems, an
// FS without syncfs and SyncFdatasync use fdatasync.
func TestSyncfsOnlyForSharedFilesystems(t *testing.T) {
	cases := []struct {
		name       string
		mode       SyncMode
		noSyncfs   bool
		perFS      []int // dirty logs on each filesystem
		wantSyncfs []int
	}{
		{"one log", SyncAuto, false, []int{1}, []int{0}},
		{"shared", SyncAuto, false, []int{3}, []int{1}},
		{"two filesystems", SyncAuto, false, []int{1, 1}, []int{0, 0}},
		{"mixed", SyncAuto, false, []int{2, 1}, []int{1, 0}},
		{"fdatasync mode", SyncFdatasync, false, []int{3}, []int{0}},
		{"no syncfs", SyncAuto, true, []int{3}, []int{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewSyncGroup(WithSyncMode(c.mode))
			defer g.Close()
			var fss []*faultfs.FS
			var logs []*Log
			for k, n := range c.perFS {
				fs := faultfs.New()
				if c.noSyncfs {
					fs.DisableSyncfs()
				}
				fss = append(fss, fs)
				for i := range n {
					l := mustOpen(t, name("/s/%d", k*100+i), Options{FS: fs, Syncer: g})
					defer l.Close()
					mustAppend(t, l, batchEntry(1, 1, 1, 1, 10))
					logs = append(logs, l)
				}
			}
			for _, err := range syncTogether(g, logs...) {
				if err != nil {
					t.Fatal(err)
				}
			}
			for k, fs := range fss {
				if fs.Syncfs() != c.wantSyncfs[k] {
					t.Fatalf("filesystem %d: %d syncfs, want %d", k, fs.Syncfs(), c.wantSyncfs[k])
				}
				if c.wantSyncfs[k] == 0 && fs.Syncs() < c.perFS[k] {
					t.Fatalf("filesystem %d: %d fsyncs for %d dirty logs", k, fs.Syncs(), c.perFS[k])
				}
				// Durable either way, directory entries included.
				crashed := fs.Crash()
				for i := range c.perFS[k] {
					l := mustOpen(t, name("/s/%d", k*100+i), Options{FS: crashed})
					if last := must[uint64](t)(l.LastIndex()); last != 1 {
						t.Fatalf("filesystem %d log %d: last %d after crash", k, i, last)
					}
					l.Close()
				}
			}
		})
	}
}
