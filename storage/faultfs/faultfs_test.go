package faultfs

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/storage/vfs"
)

func TestCrashKeepsOnlyDurableState(t *testing.T) {
	fs := New()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile("/d/a", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("synced"), 0)
	f.Sync()
	fs.SyncDir("/d")
	f.WriteAt([]byte("+lost"), 6)
	g, _ := fs.OpenFile("/d/b", os.O_RDWR|os.O_CREATE, 0o644)
	g.WriteAt([]byte("file not in a synced dir"), 0)
	g.Sync()
	if err := fs.Rename("/d/a", "/d/c"); err != nil { // not durable either
		t.Fatal(err)
	}

	c := fs.Crash()
	names, _ := c.ReadDir("/d")
	if len(names) != 1 || names[0] != "a" {
		t.Fatalf("after crash: %v", names)
	}
	if b, _ := c.ReadFile("/d/a"); string(b) != "synced" {
		t.Fatalf("after crash a = %q", b)
	}
	if b, _ := fs.ReadFile("/d/c"); string(b) != "synced+lost" {
		t.Fatalf("before crash c = %q", b)
	}
}

func TestFaults(t *testing.T) {
	fs := New()
	fs.MkdirAll("/d", 0o755)
	f, _ := fs.OpenFile("/d/a", os.O_RDWR|os.O_CREATE, 0o644)
	fs.SetRule(func(op Op, _ string, size int) (int, error) {
		switch op {
		case OpWrite:
			return size / 2, ErrInjected
		case OpSync:
			return 0, syscall.EIO
		}
		return 0, nil
	})
	if n, err := f.WriteAt([]byte("abcd"), 0); n != 2 || !errors.Is(err, ErrInjected) {
		t.Fatalf("short write: %d %v", n, err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync: %v", err)
	}
	fs.SetRule(nil)
	fs.SetSpace(3)
	if n, err := f.WriteAt([]byte("xyzw"), 2); n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("enospc: %d %v", n, err)
	}
	if b, _ := fs.ReadFile("/d/a"); string(b) != "abxyz" {
		t.Fatalf("content %q", b)
	}
	// Overwrites need no space; truncation frees it.
	if _, err := f.WriteAt([]byte("AB"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("1234"), 1); err != nil {
		t.Fatal(err)
	}
	// Open files survive removal, like on Unix.
	fs.Remove("/d/a")
	if _, err := f.ReadAt(make([]byte, 5), 0); err != nil {
		t.Fatal(err)
	}
}

// TestSyncCopiesEveryChange: a sync copies only what changed since the
// last one; overwrites below the end, truncations, writes past the end and
// preallocation must all reach what a crash keeps.
func TestSyncCopiesEveryChange(t *testing.T) {
	fs := New()
	fs.MkdirAll("/d", 0o755)
	f, _ := fs.OpenFile("/d/a", os.O_RDWR|os.O_CREATE, 0o644)
	fs.SyncDir("/d")
	p := f.(vfs.Preallocator)
	steps := []struct {
		do   func()
		want string
	}{
		{func() { f.WriteAt([]byte("abcdef"), 0) }, "abcdef"},
		{func() { f.WriteAt([]byte("XY"), 1) }, "aXYdef"},
		{func() { f.Truncate(3) }, "aXY"},
		{func() { f.WriteAt([]byte("z"), 5) }, "aXY\x00\x00z"},
		{func() { p.Preallocate(4, 4, false) }, "aXY\x00\x00z\x00\x00"},
		{func() { p.Preallocate(0, 20, true) }, "aXY\x00\x00z\x00\x00"},
		{func() { f.Truncate(2); f.Truncate(4) }, "aX\x00\x00"},
		{func() { f.Truncate(2); f.WriteAt([]byte("Q"), 1) }, "aQ"},
	}
	for i, s := range steps {
		s.do()
		before := fs.Crash()
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if b, _ := fs.Crash().ReadFile("/d/a"); string(b) != s.want {
			t.Fatalf("step %d: after sync a crash keeps %q, want %q", i, b, s.want)
		}
		if i > 0 {
			if b, _ := before.ReadFile("/d/a"); string(b) != steps[i-1].want {
				t.Fatalf("step %d: before sync a crash keeps %q, want %q", i, b, steps[i-1].want)
			}
		}
	}
}
