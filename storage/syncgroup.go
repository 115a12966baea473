package storage

import (
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SyncGroupOption configures a SyncGroup.
type SyncGroupOption func(*syncGroupConfig)

type syncGroupConfig struct {
	logger      *slog.Logger
	registerer  prometheus.Registerer
	parallelism int
	mode        SyncMode
}

// WithSyncLogger sets the logger (nil = discard).
func WithSyncLogger(l *slog.Logger) SyncGroupOption {
	return func(c *syncGroupConfig) { c.logger = l }
}

// WithSyncRegisterer registers the group's metrics (nil = none).
func WithSyncRegisterer(r prometheus.Registerer) SyncGroupOption {
	return func(c *syncGroupConfig) { c.registerer = r }
}

// WithSyncParallelism bounds the fsyncs a flush cycle runs at once
// (default 16).
func WithSyncParallelism(n int) SyncGroupOption {
	return func(c *syncGroupConfig) { c.parallelism = n }
}

// WithSyncMode chooses how a flush cycle makes logs durable (default
// SyncAuto).
func WithSyncMode(m SyncMode) SyncGroupOption {
	return func(c *syncGroupConfig) { c.mode = m }
}

// SyncGroup is the group commit of one node: Sync calls of all logs that
// share it are served by flush cycles. A cycle takes every log with a
// waiting Sync and fsyncs each one's dirty files once (in parallel,
// bounded), then wakes all its waiters. Syncs that arrive during a cycle
// are served by the next one.
//
// A Sync that finds no cycle running runs one itself (the leader), with
// no goroutine handoff; Syncs arriving meanwhile wait (followers). When the
// leader's cycle ends with Syncs waiting, it hands the following cycles
// to the group's flusher goroutine and returns; the flusher runs cycles
// until none is waiting. A flusher cycle that is one syncfs hands its
// completion (recording what became durable, waking the waiters) to the
// group's completer goroutine and starts the next cycle at once: the
// filesystem is kept busy with flushes while the last one's waiters are
// woken.
type SyncGroup struct {
	cfg       syncGroupConfig
	kick      chan struct{}     // wakes the flusher to check mu.leader and mu.closed
	completed chan *syncfsCycle // flusher -> completer; closed when the flusher exits
	done      chan struct{}     // closed when both goroutines exited

	mu struct {
		sync.Mutex
		closed  bool
		leader  cycleRunner // who runs cycles now
		pending []*Log      // logs with a waiting Sync, each once (Log.inPending)
		wait    *cycleWait  // what the pending Syncs wait for
		fss     []*fsHandle // filesystems of the logs (SyncAuto)
		// inflight counts the cycles handed to the completer and not yet
		// completed; idle: the flusher leads but waits for a kick (a Sync
		// or the completer's) before it looks at pending again.
		inflight int
		idle     bool
	}

	cycles, fsyncs, syncfs atomic.Uint64
	syncfsNanos            atomic.Uint64
	metrics                *syncMetrics
}

// cycleWait is closed when the cycle that took a batch of logs has
// flushed them all. A waiter then reads its log's outcome from the log
// (Log.syncedSince): one channel per cycle, not one per Sync.
type cycleWait struct{ done chan struct{} }

func newCycleWait() *cycleWait { return &cycleWait{done: make(chan struct{})} }

// SyncStats are cumulative counters of a SyncGroup.
type SyncStats struct {
	Cycles uint64 // flush cycles run
	Fsyncs uint64 // logs flushed (by an fsync of the active segment or a syncfs, plus a dir fsync after a roll)
	Syncfs uint64 // syncfs calls, each covering several logs of one filesystem
	// SyncfsTime is the time spent in syncfs calls: against the wall
	// time, how busy the group kept the filesystem with flushes.
	SyncfsTime time.Duration
}

// cycleRunner is who runs a SyncGroup's flush cycles.
type cycleRunner uint8

const (
	runnerNone    cycleRunner = iota
	runnerCaller              // a Sync caller (the leader)
	runnerFlusher             // the group's goroutine
)

type syncMetrics struct {
	cycles   prometheus.Counter
	fsyncs   prometheus.Counter
	syncfs   prometheus.Counter
	duration prometheus.Histogram
	logs     prometheus.Histogram
}

// NewSyncGroup starts a SyncGroup. Close stops it.
func NewSyncGroup(opts ...SyncGroupOption) *SyncGroup {
	g := &SyncGroup{kick: make(chan struct{}, 1), completed: make(chan *syncfsCycle, 1), done: make(chan struct{})}
	for _, o := range opts {
		o(&g.cfg)
	}
	if g.cfg.logger == nil {
		g.cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if g.cfg.parallelism <= 0 {
		g.cfg.parallelism = 16
	}
	g.mu.wait = newCycleWait()
	if r := g.cfg.registerer; r != nil {
		m := &syncMetrics{
			cycles:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_storage_flush_cycles_total", Help: "Group commit flush cycles."}),
			fsyncs:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_storage_log_flushes_total", Help: "Logs flushed (fsynced) by group commit."}),
			syncfs:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_storage_syncfs_total", Help: "syncfs calls of group commit, each flushing several logs of one filesystem."}),
			duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_storage_flush_cycle_seconds", Help: "Duration of a group commit flush cycle.", Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14)}),
			logs:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_storage_flush_cycle_logs", Help: "Logs flushed per cycle.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		}
		for _, c := range []prometheus.Collector{m.cycles, m.fsyncs, m.syncfs, m.duration, m.logs} {
			if err := r.Register(c); err != nil {
				g.cfg.logger.Warn("registering storage metric", "err", err)
			}
		}
		g.metrics = m
	}
	var wg sync.WaitGroup
	wg.Go(g.run)
	wg.Go(g.complete)
	go func() { wg.Wait(); close(g.done) }()
	return g
}

// Stats returns the group's counters.
func (g *SyncGroup) Stats() SyncStats {
	return SyncStats{Cycles: g.cycles.Load(), Fsyncs: g.fsyncs.Load(), Syncfs: g.syncfs.Load(), SyncfsTime: time.Duration(g.syncfsNanos.Load())}
}

// Close lets the running cycles serve the syncs already waiting, stops the
// flusher and waits for it. Later syncs of logs using the group return
// ErrClosed.
func (g *SyncGroup) Close() error {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return nil
	}
	g.mu.closed = true
	g.mu.Unlock()
	g.kickFlusher()
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	var err error
	for _, h := range g.mu.fss {
		if cerr := h.fs.Close(); err == nil {
			err = cerr
		}
	}
	g.mu.fss = nil
	return err
}

// sync waits until a cycle that started after the call has flushed l,
// running the cycle itself when none is running. seq is l's write
// sequence at the call: the writes to make durable.
func (g *SyncGroup) sync(l *Log, seq uint64) error {
	for {
		g.mu.Lock()
		if g.mu.closed {
			g.mu.Unlock()
			return ErrClosed
		}
		w := g.enqueueLocked(l)
		if g.mu.leader != runnerNone {
			idle := g.mu.idle
			g.mu.idle = false
			g.mu.Unlock()
			if idle {
				g.kickFlusher()
			}
			<-w.done
		} else {
			g.mu.leader = runnerCaller
			batch, w := g.takeLocked()
			g.mu.Unlock()

			g.cycle(batch)
			close(w.done)

			g.mu.Lock()
			if len(g.mu.pending) > 0 {
				g.mu.leader = runnerFlusher
			} else {
				g.mu.leader = runnerNone
			}
			kick := g.mu.leader == runnerFlusher || g.mu.closed
			g.mu.Unlock()
			if kick {
				g.kickFlusher()
			}
		}
		if done, err := l.syncOutcome(seq); done {
			return err
		}
		// The cycle that took l made seq durable or failed l, but a
		// directory fsync may still be due (a roll since): wait for
		// another cycle.
	}
}

// enqueueLocked adds l to the pending batch (once) and returns what the
// batch's waiters wait for.
func (g *SyncGroup) enqueueLocked(l *Log) *cycleWait {
	if !l.inPending {
		l.inPending = true
		g.mu.pending = append(g.mu.pending, l)
	}
	return g.mu.wait
}

// takeLocked returns the pending batch and its waiters' handle, and
// starts a new batch.
func (g *SyncGroup) takeLocked() ([]*Log, *cycleWait) {
	batch, w := g.mu.pending, g.mu.wait
	for _, l := range batch {
		l.inPending = false
	}
	g.mu.pending, g.mu.wait = make([]*Log, 0, len(batch)), newCycleWait()
	return batch, w
}

func (g *SyncGroup) kickFlusher() {
	select {
	case g.kick <- struct{}{}:
	default: // a wakeup is pending; the flusher reads the state after it
	}
}

// run is the flusher: it runs cycles while it leads and Syncs wait, and
// exits once the group is closed and no cycle runs. A cycle that is one
// syncfs goes to the completer once the syncfs returned.
//
// While the completer wakes the last cycle's waiters, most of them come
// back with another Sync: the flusher keeps the lead even when none waits
// yet (no caller runs a cycle of one log in between), and when fewer than
// half as many logs as in its last cycle wait, it first yields once, so
// that goroutines already runnable (woken waiters on their way to Sync)
// join the batch instead of the one after.
func (g *SyncGroup) run() {
	defer close(g.completed)
	last := 0 // logs in the flusher's last cycle
	for range g.kick {
		g.mu.Lock()
		g.mu.idle = false
		yielded := false
		for g.mu.leader == runnerFlusher {
			if len(g.mu.pending) < max(last/2, 1) && !yielded && !g.mu.closed {
				// Woken waiters may be runnable and on their way to Sync:
				// let them run first.
				yielded = true
				g.mu.Unlock()
				runtime.Gosched()
				g.mu.Lock()
				continue
			}
			if len(g.mu.pending) == 0 {
				if g.mu.inflight > 0 && !g.mu.closed {
					g.mu.idle = true
				} else {
					g.mu.leader = runnerNone
				}
				break
			}
			yielded = false
			batch, w := g.takeLocked()
			last = len(batch)
			h := syncfsTarget(batch)
			if h != nil {
				g.mu.inflight++
			}
			g.mu.Unlock()
			if h != nil {
				start := time.Now()
				g.cycles.Add(1)
				c := g.runSyncfs(h, batch)
				c.wait, c.start = w, start
				g.completed <- c
			} else {
				g.cycle(batch)
				close(w.done)
			}
			g.mu.Lock()
		}
		exit := g.mu.closed && g.mu.leader == runnerNone
		g.mu.Unlock()
		if exit {
			return
		}
	}
}

// complete finishes the syncfs cycles the flusher hands over, in order.
func (g *SyncGroup) complete() {
	for c := range g.completed {
		g.finishSyncfs(c)
		close(c.wait.done)
		g.mu.Lock()
		g.mu.inflight--
		kick := g.mu.inflight == 0 && g.mu.idle
		g.mu.idle = g.mu.idle && !kick
		g.mu.Unlock()
		if kick {
			g.kickFlusher()
		}
	}
}

func (g *SyncGroup) cycle(batch []*Log) {
	start := time.Now()
	g.cycles.Add(1)
	single, shared := g.split(batch)
	logs := make(chan *Log, len(single))
	for _, l := range single {
		logs <- l
	}
	close(logs)
	work := func() {
		for l := range logs {
			l.flush()
			g.fsyncs.Add(1)
		}
	}
	// Without a syncfs to run meanwhile, this goroutine is one of the
	// workers (a cycle of one log starts no goroutine).
	workers := min(g.cfg.parallelism, len(single))
	inline := len(shared) == 0 && workers > 0
	if inline {
		workers--
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(work)
	}
	// Filesystems with several dirty logs: one syncfs each, while the
	// workers fdatasync the others.
	for h, ls := range shared {
		g.finishSyncfs(g.runSyncfs(h, ls))
	}
	if inline {
		work()
	}
	wg.Wait()
	g.observe(start, len(batch))
}

func (g *SyncGroup) observe(start time.Time, logs int) {
	if m := g.metrics; m != nil {
		m.cycles.Inc()
		m.fsyncs.Add(float64(logs))
		m.duration.Observe(time.Since(start).Seconds())
		m.logs.Observe(float64(logs))
	}
}
