package storage

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
	seq := l.mu.seq
	done := l.mu.syncedSeq == seq && !l.mu.dirDirty
	l.mu.Unlock()
	if done {
		return nil
	}
	if l.syncer != nil {
		return l.syncer.sync(l, seq)
	}
	return l.flush()
}

// syncOutcome tells a Sync that waited for a group flush of the log,
// having seen write sequence seq, whether it is over: with nil when seq is
// durable, with the log's error when it refuses writes. It is not over
// while the directory still needs an fsync (a sequence made durable
// without it, or a later roll: another cycle settles both).
func (l *Log) syncOutcome(seq uint64) (done bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.syncedSeq >= seq && !l.mu.dirDirty {
		return true, nil
	}
	if err := l.writableLocked(); err != nil {
		return true, err
	}
	return false, nil
}

// flush fsyncs the active segment (and the directory after a roll) if
// anything was written since the last flush. Concurrent flushes of one log
// serialize; the later ones find the work done.
func (l *Log) flush() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	p, err := l.flushPrepare()
	if p == nil {
		return err
	}
	p.fdatasync = true
	return l.flushFinish(p, p.f.Sync())
}

// flushPrep is what a flush captured before its data fsync.
type flushPrep struct {
	a    *segment // the active segment, pinned
	f    File     // its file
	seq  uint64   // the write sequence the fsync covers
	dir  bool     // the directory needs an fsync too
	rp   recoveryPoint
	rpOK bool
	gen  uint64
	// appended is Log.mu.appended at the preparation; fdatasync: the
	// flush is an fsync of the file, not a syncfs.
	appended  uint64
	fdatasync bool
}

// flushPrepare starts a flush; syncMu must be held until flushFinish. It
// returns nil and the log's error, or nil, nil if nothing needs syncing.
// Otherwise the caller makes p.f durable (fdatasync, or a syncfs of its
// filesystem started after this call) and passes the result to
// flushFinish.
func (l *Log) flushPrepare() (*flushPrep, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return nil, err
	}
	seq, dir := l.mu.seq, l.mu.dirDirty
	if l.mu.syncedSeq == seq && !dir {
		return nil, nil
	}
	a := l.activeLocked()
	if err := a.flushIndexDueLocked(); err != nil {
		return nil, l.failLocked(err)
	}
	p := &flushPrep{a: a, f: l.acquireLocked(a), seq: seq, dir: dir, gen: l.mu.rpGen, appended: l.mu.appended}
	l.mu.dirDirty = false
	p.rp, p.rpOK = l.recoveryPointLocked()
	return p, nil
}

// flushFinish completes a flush whose data fsync returned err: it fsyncs
// the directory if a file was created, records the recovery point and
// marks the captured writes durable, or fails the log.
func (l *Log) flushFinish(p *flushPrep, err error) error {
	if err == nil && p.dir {
		err = l.fs.SyncDir(l.dir)
	}

	l.mu.Lock()
	l.releaseLocked(p.a)
	syncRP := false
	if err == nil && p.rpOK && p.gen == l.mu.rpGen && !l.mu.closed {
		// What was captured is durable now: later opens may scan from
		// here. The point is rewritten when it moved recoveryWriteBytes
		// and made durable when it moved recoverySyncBytes, bounding the
		// scan after a crash; a stale point only lengthens it.
		syncRP = p.rp.Base != l.mu.rpSynced.Base || p.rp.Pos >= l.mu.rpSynced.Pos+recoverySyncBytes
		w := l.mu.rpWritten
		if syncRP && !p.a.sealed {
			// The index files are written every indexWriteBytes and never
			// fsynced by a flush; making them durable with the point
			// bounds what Open re-indexes after a crash, as the point
			// bounds what it scans.
			err = p.a.syncIndexLocked()
		}
		if err == nil && (syncRP || p.rp.Base != w.Base || p.rp.Pos >= w.Pos+min(recoveryWriteBytes, recoverySyncBytes)) {
			_, err = l.recf.WriteAt(p.rp.encode(), 0)
			l.mu.rpWritten = p.rp
			if syncRP {
				l.mu.rpSynced = p.rp
			}
		}
	}
	if err != nil {
		err = l.failLocked(err)
		l.mu.Unlock()
		return err
	}
	// ApplySnapshot may have moved it past p.seq meanwhile.
	l.mu.syncedSeq = max(l.mu.syncedSeq, p.seq)
	if p.appended > l.mu.syncedAppended {
		n := p.appended - l.mu.syncedAppended
		l.mu.syncedAppended = p.appended
		if p.fdatasync && n < zeroAheadMaxSync {
			l.mu.smallFlushes++
		} else {
			l.mu.smallFlushes = 0
		}
		l.mu.zeroAhead = l.mu.smallFlushes >= zeroAheadAfter
	}
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
