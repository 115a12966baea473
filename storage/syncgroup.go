package storage

import (
	"io"
	"log/slog"
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
// until none is waiting.
type SyncGroup struct {
	cfg  syncGroupConfig
	kick chan struct{} // wakes the flusher to check mu.leader and mu.closed
	done chan struct{}

	mu struct {
		sync.Mutex
		closed  bool
		leader  cycleRunner // who runs cycles now
		pending map[*Log][]chan error
		spare   map[*Log][]chan error // a cleared batch map, reused
		fss     []*fsHandle           // filesystems of the logs (SyncAuto)
	}

	cycles, fsyncs, syncfs atomic.Uint64
	metrics                *syncMetrics
}

// SyncStats are cumulative counters of a SyncGroup.
type SyncStats struct {
	Cycles uint64 // flush cycles run
	Fsyncs uint64 // logs flushed (by an fsync of the active segment or a syncfs, plus a dir fsync after a roll)
	Syncfs uint64 // syncfs calls, each covering several logs of one filesystem
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
	g := &SyncGroup{kick: make(chan struct{}, 1), done: make(chan struct{})}
	for _, o := range opts {
		o(&g.cfg)
	}
	if g.cfg.logger == nil {
		g.cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if g.cfg.parallelism <= 0 {
		g.cfg.parallelism = 16
	}
	g.mu.pending, g.mu.spare = map[*Log][]chan error{}, map[*Log][]chan error{}
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
	go g.run()
	return g
}

// Stats returns the group's counters.
func (g *SyncGroup) Stats() SyncStats {
	return SyncStats{Cycles: g.cycles.Load(), Fsyncs: g.fsyncs.Load(), Syncfs: g.syncfs.Load()}
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
// running the cycle itself when none is running.
func (g *SyncGroup) sync(l *Log) error {
	ch := make(chan error, 1)
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.mu.pending[l] = append(g.mu.pending[l], ch)
	if g.mu.leader != runnerNone {
		g.mu.Unlock()
		return <-ch
	}
	g.mu.leader = runnerCaller
	batch := g.takeLocked()
	g.mu.Unlock()

	g.cycle(batch)

	g.mu.Lock()
	g.mu.spare = clearBatch(batch)
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
	return <-ch
}

// takeLocked returns the waiting syncs as a batch and starts a new one.
func (g *SyncGroup) takeLocked() map[*Log][]chan error {
	batch := g.mu.pending
	g.mu.pending, g.mu.spare = g.mu.spare, nil
	if g.mu.pending == nil {
		g.mu.pending = map[*Log][]chan error{}
	}
	return batch
}

func clearBatch(b map[*Log][]chan error) map[*Log][]chan error {
	clear(b)
	return b
}

func (g *SyncGroup) kickFlusher() {
	select {
	case g.kick <- struct{}{}:
	default: // a wakeup is pending; the flusher reads the state after it
	}
}

// run is the flusher: it runs cycles while it leads and Syncs wait, and
// exits once the group is closed and no cycle runs.
func (g *SyncGroup) run() {
	defer close(g.done)
	for range g.kick {
		g.mu.Lock()
		for g.mu.leader == runnerFlusher {
			if len(g.mu.pending) == 0 {
				g.mu.leader = runnerNone
				break
			}
			batch := g.takeLocked()
			g.mu.Unlock()
			g.cycle(batch)
			g.mu.Lock()
			g.mu.spare = clearBatch(batch)
		}
		exit := g.mu.closed && g.mu.leader == runnerNone
		g.mu.Unlock()
		if exit {
			return
		}
	}
}

func (g *SyncGroup) cycle(batch map[*Log][]chan error) {
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
			err := l.flush()
			g.fsyncs.Add(1)
			for _, ch := range batch[l] {
				ch <- err
			}
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
		g.flushFilesystem(h, ls, batch)
	}
	if inline {
		work()
	}
	wg.Wait()
	if m := g.metrics; m != nil {
		m.cycles.Inc()
		m.fsyncs.Add(float64(len(batch)))
		m.duration.Observe(time.Since(start).Seconds())
		m.logs.Observe(float64(len(batch)))
	}
}
