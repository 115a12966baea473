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

// SyncGroup is the group commit of one node: Sync calls of all logs that
// share it are served by flush cycles run by one goroutine. A cycle takes
// every log with a waiting Sync and fsyncs each one's dirty files once
// (in parallel, bounded), then wakes all its waiters. Syncs that arrive
// during a cycle are served by the next one.
type SyncGroup struct {
	cfg  syncGroupConfig
	kick chan struct{}
	done chan struct{}

	mu struct {
		sync.Mutex
		closed  bool
		pending map[*Log][]chan error
	}

	cycles, fsyncs atomic.Uint64
	metrics        *syncMetrics
}

// SyncStats are cumulative counters of a SyncGroup.
type SyncStats struct {
	Cycles uint64 // flush cycles run
	Fsyncs uint64 // logs flushed (one fsync of the active segment each, plus a dir fsync after a roll)
}

type syncMetrics struct {
	cycles   prometheus.Counter
	fsyncs   prometheus.Counter
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
	g.mu.pending = map[*Log][]chan error{}
	if r := g.cfg.registerer; r != nil {
		m := &syncMetrics{
			cycles:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_storage_flush_cycles_total", Help: "Group commit flush cycles."}),
			fsyncs:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_storage_log_flushes_total", Help: "Logs flushed (fsynced) by group commit."}),
			duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_storage_flush_cycle_seconds", Help: "Duration of a group commit flush cycle.", Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14)}),
			logs:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_storage_flush_cycle_logs", Help: "Logs flushed per cycle.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		}
		for _, c := range []prometheus.Collector{m.cycles, m.fsyncs, m.duration, m.logs} {
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
	return SyncStats{Cycles: g.cycles.Load(), Fsyncs: g.fsyncs.Load()}
}

// Close serves the syncs already waiting, stops the flusher and waits for
// it. Later syncs of logs using the group return ErrClosed.
func (g *SyncGroup) Close() error {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return nil
	}
	g.mu.closed = true
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
	<-g.done
	return nil
}

// sync waits until a cycle that started after the call has flushed l.
func (g *SyncGroup) sync(l *Log) error {
	ch := make(chan error, 1)
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.mu.pending[l] = append(g.mu.pending[l], ch)
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return <-ch
}

func (g *SyncGroup) run() {
	defer close(g.done)
	for {
		<-g.kick
		g.mu.Lock()
		batch, closed := g.mu.pending, g.mu.closed
		g.mu.pending = map[*Log][]chan error{}
		g.mu.Unlock()
		if len(batch) > 0 {
			g.cycle(batch)
		}
		if closed {
			return
		}
	}
}

func (g *SyncGroup) cycle(batch map[*Log][]chan error) {
	start := time.Now()
	g.cycles.Add(1)
	logs := make(chan *Log, len(batch))
	for l := range batch {
		logs <- l
	}
	close(logs)
	var wg sync.WaitGroup
	for range min(g.cfg.parallelism, len(batch)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range logs {
				err := l.flush()
				g.fsyncs.Add(1)
				for _, ch := range batch[l] {
					ch <- err
				}
			}
		}()
	}
	wg.Wait()
	if m := g.metrics; m != nil {
		m.cycles.Inc()
		m.fsyncs.Add(float64(len(batch)))
		m.duration.Observe(time.Since(start).Seconds())
		m.logs.Observe(float64(len(batch)))
	}
}

// Sync makes everything appended so far durable. Concurrent calls (of this
// and other logs sharing the SyncGroup) share fsyncs. After an fsync or
// write error the log is failed: this and every later write returns the
// error; an fsync is never retried.
func (l *Log) Sync() error {
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	done := l.mu.syncedSeq == l.mu.seq && !l.mu.dirDirty
	l.mu.Unlock()
	if done {
		return nil
	}
	if l.syncer != nil {
		return l.syncer.sync(l)
	}
	return l.flush()
}

// flush fsyncs the active segment (and the directory after a roll) if
// anything was written since the last flush. Concurrent flushes of one log
// serialize; the later ones find the work done.
func (l *Log) flush() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	seq, dir := l.mu.seq, l.mu.dirDirty
	if l.mu.syncedSeq == seq && !dir {
		l.mu.Unlock()
		return nil
	}
	a := l.activeLocked()
	if err := a.flushIndexLocked(); err != nil {
		err = l.failLocked(err)
		l.mu.Unlock()
		return err
	}
	f := l.acquireLocked(a)
	l.mu.dirDirty = false
	rp, rpOK := l.recoveryPointLocked()
	gen := l.mu.rpGen
	l.mu.Unlock()

	err := f.Sync()
	if err == nil && dir {
		err = l.fs.SyncDir(l.dir)
	}

	l.mu.Lock()
	l.releaseLocked(a)
	syncRP := false
	if err == nil && rpOK && gen == l.mu.rpGen && !l.mu.closed {
		// What was captured is durable now: later opens scan from here.
		_, err = l.recf.WriteAt(rp.encode(), 0)
		// Make the point itself durable now and then, bounding the scan
		// after a crash (otherwise it lags by the kernel's writeback).
		if rp.Base != l.mu.rpSynced.Base || rp.Pos >= l.mu.rpSynced.Pos+recoverySyncBytes {
			syncRP, l.mu.rpSynced = true, rp
		}
	}
	if err != nil {
		err = l.failLocked(err)
		l.mu.Unlock()
		return err
	}
	l.mu.syncedSeq = seq
	recf := l.recf
	l.mu.Unlock()
	if syncRP {
		// Outside mu; an invalidation racing with it writes and fsyncs
		// its zeros itself, and this fsync cannot bring the point back.
		if err := recf.Sync(); err != nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.failLocked(err)
		}
	}
	return nil
}
