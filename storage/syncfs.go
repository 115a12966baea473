package storage

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/storage/vfs"
)

// SyncMode chooses how a SyncGroup's flush cycle makes logs durable.
type SyncMode int

const (
	// SyncAuto (the default) flushes the dirty logs of a cycle that share
	// a filesystem with one syncfs(2) of that filesystem when there are at
	// least two of them, and fdatasyncs each file otherwise (a single
	// dirty file, logs on different filesystems, an FS without syncfs, or
	// Linux before 5.8, whose syncfs does not report writeback errors).
	SyncAuto SyncMode = iota
	// SyncFdatasync fdatasyncs every dirty log's active segment, up to
	// the group's parallelism at once.
	SyncFdatasync
)

// fsHandle is a SyncGroup's handle on one filesystem. It is opened when
// the first log of that filesystem opens, before the log writes, so its
// syncfs reports every later writeback error of the filesystem.
type fsHandle struct {
	key fsKey
	fs  vfs.Filesystem
	// failed is set by the first syncfs error. The handle is not used
	// again: its error cursor has moved past the error, so a later syncfs
	// would not report it to logs whose data it hit. Their own fdatasync
	// does (each open file has its own cursor).
	failed atomic.Bool
}

type fsKey struct {
	fs  FS
	dev uint64
}

// filesystem returns the group's handle on the filesystem holding dir, or
// nil if the group does not use syncfs for it. Called by Open before the
// log writes anything.
func (g *SyncGroup) filesystem(fsys FS, dir string) *fsHandle {
	if g.cfg.mode != SyncAuto {
		return nil
	}
	fss, ok := fsys.(vfs.FilesystemSyncer)
	if !ok {
		return nil
	}
	h, err := fss.OpenFilesystem(dir)
	if err != nil {
		if !errors.Is(err, vfs.ErrNoSyncfs) {
			g.cfg.logger.Warn("opening filesystem for syncfs; using fdatasync", "dir", dir, "err", err)
		}
		return nil
	}
	key := fsKey{fs: fsys, dev: h.Device()}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mu.closed {
		for _, o := range g.mu.fss {
			if o.key == key {
				h.Close()
				return o
			}
		}
		o := &fsHandle{key: key, fs: h}
		g.mu.fss = append(g.mu.fss, o)
		return o
	}
	h.Close()
	return nil
}

// split divides a cycle's logs into those flushed one by one and those
// flushed by a syncfs of their filesystem (two or more per filesystem).
func (g *SyncGroup) split(batch []*Log) (single []*Log, shared map[*fsHandle][]*Log) {
	for _, l := range batch {
		if h := l.fsys; h != nil && !h.failed.Load() {
			if shared == nil {
				shared = map[*fsHandle][]*Log{}
			}
			shared[h] = append(shared[h], l)
			continue
		}
		single = append(single, l)
	}
	for h, ls := range shared {
		if len(ls) < 2 { // one fdatasync is cheaper than a syncfs
			single = append(single, ls...)
			delete(shared, h)
		}
	}
	return single, shared
}

// syncfsCycle is a syncfs of some logs of one filesystem, from the
// preparation of their flushes to their completion.
type syncfsCycle struct {
	logs  []*Log
	preps []*flushPrep // nil where nothing needed a flush or the log refused it
	err   error        // of the syncfs
	// Set when the syncfs is a whole flusher cycle, completed by the
	// completer goroutine.
	wait  *cycleWait
	start time.Time
}

// syncfsTarget returns the filesystem of a batch that one syncfs can
// flush whole (two or more logs, all of one filesystem whose handle
// works), or nil.
func syncfsTarget(batch []*Log) *fsHandle {
	if len(batch) < 2 {
		return nil
	}
	h := batch[0].fsys
	if h == nil || h.failed.Load() {
		return nil
	}
	for _, l := range batch[1:] {
		if l.fsys != h {
			return nil
		}
	}
	return h
}

// runSyncfs prepares the flushes of logs of one filesystem and makes them
// durable with one syncfs. It leaves the logs' syncMu held for
// finishSyncfs. A syncfs error fails every log of the call (the error may
// belong to any file of the filesystem) and retires the handle; it is
// never retried.
func (g *SyncGroup) runSyncfs(h *fsHandle, logs []*Log) *syncfsCycle {
	c := &syncfsCycle{logs: logs, preps: make([]*flushPrep, len(logs))}
	need := false
	for i, l := range logs {
		l.syncMu.Lock()
		// An error here is kept by the log (failed or closed), where its
		// waiters read it.
		c.preps[i], _ = l.flushPrepare()
		need = need || c.preps[i] != nil
	}
	if need {
		// Every write captured by the preparations happened before this
		// call, so syncfs covers it.
		t0 := time.Now()
		c.err = h.fs.Sync()
		g.syncfsNanos.Add(uint64(time.Since(t0)))
		if c.err != nil {
			h.failed.Store(true)
			g.cfg.logger.Error("syncfs failed; failing the logs it flushed", "err", c.err, "logs", len(logs))
		}
		g.syncfs.Add(1)
		if m := g.metrics; m != nil {
			m.syncfs.Inc()
		}
	}
	return c
}

// finishSyncfs records the outcome of a syncfs in each of its logs and
// releases them. The logs' waiters may be woken afterwards.
func (g *SyncGroup) finishSyncfs(c *syncfsCycle) {
	for i, l := range c.logs {
		if p := c.preps[i]; p != nil {
			l.flushFinish(p, c.err)
		}
		l.syncMu.Unlock()
		g.fsyncs.Add(1)
	}
	if c.wait != nil {
		g.observe(c.start, len(c.logs))
	}
}

func (m SyncMode) String() string {
	switch m {
	case SyncAuto:
		return "auto"
	case SyncFdatasync:
		return "fdatasync"
	}
	return "SyncMode(" + strconv.Itoa(int(m)) + ")"
}
