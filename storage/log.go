package storage

import (
	"log/slog"
	"os"
	"sync"
)

// maxOpenSealed bounds the sealed segments whose files a log keeps open.
const maxOpenSealed = 8

// Log is one partition's segmented log: the Raft log and the record log at
// once. It implements raft.Storage. All methods are safe for concurrent use.
type Log struct {
	dir    string
	opts   Options
	fs     FS
	logger *slog.Logger
	syncer *SyncGroup // nil: Sync flushes inline
	fsys   *fsHandle  // the syncer's handle on dir's filesystem; nil: fdatasync

	// inPending: the log is in its SyncGroup's pending batch. Guarded by
	// SyncGroup.mu.
	inPending bool

	// syncMu serializes flushes of this log; held across the fsync, never
	// while waiting for mu... it is always taken before mu.
	syncMu sync.Mutex

	recf File // the recovery point file; guarded by mu

	mu struct {
		sync.Mutex
		closed bool
		failed error // first write/fsync error; the log refuses writes

		segs      []*segment // ascending; the last one is active
		lastIndex uint64
		lastTerm  uint64
		next      uint64          // next offset
		start     uint64          // log start offset
		st        *persistedState // immutable once set; replaced whole
		snaps     []uint64        // indexes of the snapshot files on disk, ascending
		cache     entryCache

		seq       uint64        // bumped by every write
		syncedSeq uint64        // seq made durable
		dirDirty  bool          // a file was created since the last dir fsync
		lastFrame int64         // position of the active segment's last frame (0: none, -1: unknown)
		rpGen     uint64        // bumped when the recovery point is invalidated
		rpSynced  recoveryPoint // the recovery point last fsynced
		rpWritten recoveryPoint // the recovery point last written

		noPrealloc bool // preallocation failed or is unsupported: stop trying
		noZeros    bool // writing zeros ahead failed: stop trying
		// appended counts the frame bytes ever appended, syncedAppended those a
		// flush made durable; smallFlushes counts the last flushes in a row that
		// were fdatasyncs of fewer than zeroAheadMaxSync bytes, and zeroAhead
		// is set while there were zeroAheadAfter of them (reserveLocked writes
		// zeros ahead).
		appended, syncedAppended uint64
		smallFlushes             int
		zeroAhead                bool

		wbuf       []byte
		clock      uint64 // for segment.lastUsed
		openSealed int
	}
}

// Open creates or recovers the log in dir.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	l := &Log{dir: dir, opts: opts, fs: opts.FS, logger: opts.Logger.With("dir", dir), syncer: opts.Syncer}
	l.mu.cache.max = opts.CacheBytes
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if l.syncer != nil {
		l.fsys = l.syncer.filesystem(l.fs, dir)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.recoverLocked(); err != nil {
		l.closeFilesLocked()
		return nil, err
	}
	l.pruneSnapsLocked()
	return l, nil
}

// createSegmentLocked creates a new active segment file with its indexes.
func (l *Log) createSegmentLocked(h segHeader) (*segment, error) {
	h.Created = l.opts.Now().UnixMilli()
	s := &segment{dir: &l.dir, segHeader: h, maxTs: noTimestamp, maxTsKnown: true, idx: indexOK}
	f, err := l.fs.OpenFile(s.segPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	s.files().f = f
	if _, err := f.WriteAt(h.encode(), 0); err != nil {
		f.Close()
		return nil, err
	}
	if err := s.openIndexesLocked(l.fs, true); err != nil {
		s.closeFilesLocked()
		return nil, err
	}
	s.size, s.lastIdxPos, s.lastIdxTs = segHeaderSize, segHeaderSize, noTimestamp
	l.mu.dirDirty = true
	l.mu.seq++
	return s, nil
}

func (l *Log) activeLocked() *segment { return l.mu.segs[len(l.mu.segs)-1] }

func (l *Log) firstIndexLocked() uint64 { return l.mu.segs[0].BaseIndex }

// writableLocked returns why the log refuses writes, if it does.
func (l *Log) writableLocked() error {
	if l.mu.closed {
		return ErrClosed
	}
	return l.mu.failed
}

// failLocked marks the log failed after a write or fsync error.
func (l *Log) failLocked(err error) error {
	if l.mu.failed == nil {
		l.mu.failed = &failedError{cause: err}
		l.logger.Error("log failed, refusing further writes", "err", err)
	}
	return l.mu.failed
}

// segmentForIndexLocked returns the position in segs of the segment holding
// index i (first <= i).
func (l *Log) segmentForIndexLocked(i uint64) int {
	segs := l.mu.segs
	lo, hi := 0, len(segs)
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if segs[m].BaseIndex <= i {
			lo = m
		} else {
			hi = m
		}
	}
	return lo
}

// segmentForOffsetLocked returns the last segment whose base offset is
// <= off: the one holding off when start <= off < next.
func (l *Log) segmentForOffsetLocked(off uint64) int {
	segs := l.mu.segs
	lo, hi := 0, len(segs)
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if segs[m].BaseOffset <= off {
			lo = m
		} else {
			hi = m
		}
	}
	return lo
}

// endPointLocked is the state at the end of segment k.
func (l *Log) endPointLocked(k int) point {
	s := l.mu.segs[k]
	if k == len(l.mu.segs)-1 {
		return point{pos: s.size, index: l.mu.lastIndex + 1, offset: l.mu.next, tsBefore: s.maxTs}
	}
	n := l.mu.segs[k+1]
	return point{pos: s.size, index: n.BaseIndex, offset: n.BaseOffset, tsBefore: s.maxTs}
}

// ensureOpenLocked opens a segment's files and validates its indexes
// (rebuilding them if missing or damaged).
func (l *Log) ensureOpenLocked(k int) (*segment, error) {
	s := l.mu.segs[k]
	l.mu.clock++
	s.files().lastUsed = l.mu.clock
	if !s.sealed || (s.f != nil && s.oi != nil) {
		return s, nil
	}
	if s.f == nil {
		f, err := l.fs.OpenFile(s.segPath(), os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		s.f = f
	}
	if s.idx != indexOK {
		if err := l.checkIndexLocked(k); err != nil {
			return nil, err
		}
	}
	if err := s.openIndexesLocked(l.fs, false); err != nil {
		return nil, err
	}
	l.mu.openSealed++
	l.evictSealedLocked(s)
	return s, nil
}

// evictSealedLocked closes the least recently used sealed segments' files
// beyond maxOpenSealed.
func (l *Log) evictSealedLocked(keep *segment) {
	for l.mu.openSealed > maxOpenSealed {
		var lru *segment
		for _, s := range l.mu.segs {
			if s.sealed && s != keep && s.segFiles != nil && s.oi != nil && s.refs == 0 && (lru == nil || s.lastUsed < lru.lastUsed) {
				lru = s
			}
		}
		if lru == nil {
			return
		}
		lru.closeFilesLocked()
		l.mu.openSealed--
	}
}

// removeSegmentLocked unlinks a segment; readers holding it keep reading
// through their open file.
func (l *Log) removeSegmentLocked(s *segment) {
	if s.sealed && s.segFiles != nil && s.oi != nil {
		l.mu.openSealed--
	}
	s.files().removed = true
	s.closeFilesLocked()
	if err := removeSegmentFiles(l.fs, s.path()); err != nil {
		l.logger.Warn("removing segment files", "file", s.segPath(), "err", err)
	}
}

// acquireLocked pins s.f for use outside mu.
func (l *Log) acquireLocked(s *segment) File {
	s.refs++
	return s.f
}

func (l *Log) release(s *segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(s)
}

func (l *Log) releaseLocked(s *segment) {
	s.refs--
	if s.refs == 0 && (s.removed || l.mu.closed) && s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

func (l *Log) closeFilesLocked() {
	for _, s := range l.mu.segs {
		s.closeFilesLocked()
	}
	if l.recf != nil {
		l.recf.Close()
		l.recf = nil
	}
}

// Size is the total size of the segment files in bytes.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.mu.segs {
		n += s.size
	}
	return n
}

// Close syncs what was appended and closes the log. Close waits for an
// in-flight flush of the log.
func (l *Log) Close() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	var err error
	if l.mu.failed == nil {
		a := l.activeLocked()
		if err = a.flushIndexLocked(); err == nil {
			err = a.trimLocked()
		}
		if err == nil && l.mu.seq != l.mu.syncedSeq {
			if err = a.f.Sync(); err == nil && l.mu.dirDirty {
				err = l.fs.SyncDir(l.dir)
			}
		}
		if rp, ok := l.recoveryPointLocked(); ok && err == nil {
			// Durable, so that a clean restart scans nothing.
			if _, err = l.recf.WriteAt(rp.encode(), 0); err == nil {
				err = l.recf.Sync()
			}
		}
	}
	l.mu.closed = true
	l.closeFilesLocked()
	l.mu.cache.reset()
	return err
}
