package storage

import "fmt"

// ApplyRetention deletes whole old segments older than retentionMs (by
// their largest batch timestamp, or creation time without batches) or
// beyond retentionBytes (<= 0 = unlimited), never one holding an entry
// above safeIndex, never the active segment, and only so many that the
// log then starts right after a snapshot (dropLocked). It returns how many
// segments it deleted.
func (l *Log) ApplyRetention(safeIndex uint64, retentionMs, retentionBytes int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	var total int64
	for _, s := range l.mu.segs {
		total += s.size
	}
	now := l.opts.Now().UnixMilli()
	n := 0 // the first n segments are past retention
	for ; n < len(l.mu.segs)-1; n++ {
		s := l.mu.segs[n]
		del := retentionBytes > 0 && total-s.size >= retentionBytes
		if !del && retentionMs > 0 {
			ts, err := l.segMaxTsLocked(n)
			if err != nil {
				return 0, err
			}
			if ts == noTimestamp {
				ts = s.Created
			}
			del = now-ts > retentionMs
		}
		if !del {
			break
		}
		total -= s.size
	}
	return l.dropLocked(n, safeIndex), nil
}

// dropLocked deletes the longest prefix of at most n segments, not the
// active one, that ends at or below safeIndex with a snapshot at its last
// index: the log always starts right after a snapshot, so a follower that
// installs StartSnapshot() receives every entry the log holds. It returns how
// many segments it deleted.
func (l *Log) dropLocked(n int, safeIndex uint64) int {
	n = min(n, len(l.mu.segs)-1)
	for ; n > 0; n-- {
		end := l.mu.segs[n].BaseIndex - 1
		if end <= safeIndex && l.hasSnapLocked(end) {
			break
		}
	}
	for range n {
		l.dropFirstLocked()
	}
	if n > 0 {
		l.pruneSnapsLocked()
	}
	return n
}

// dropFirstLocked deletes the oldest segment and moves the start.
func (l *Log) dropFirstLocked() {
	s := l.mu.segs[0]
	l.removeSegmentLocked(s)
	l.mu.segs[0] = nil
	l.mu.segs = l.mu.segs[1:]
	if len(l.mu.segs) < cap(l.mu.segs)/2 {
		l.mu.segs = append([]*segment(nil), l.mu.segs...)
	}
	l.mu.start = max(l.mu.start, l.mu.segs[0].BaseOffset)
}

// DeleteBefore moves the log start offset to offset (Kafka DeleteRecords),
// durably, and deletes whole segments entirely below it (as many as
// dropLocked may). offset beyond NextOffset returns
// *OffsetOutOfRangeError; an offset at or below the start changes nothing.
func (l *Log) DeleteBefore(offset uint64, safeIndex uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset > l.mu.next {
		return &OffsetOutOfRangeError{Offset: offset, Start: l.mu.start, End: l.mu.next}
	}
	if offset > l.mu.st.StartOffset { // durable even where retention moved the start already
		next := l.cloneStateLocked()
		next.StartOffset = offset
		if err := l.saveStateLocked(next); err != nil {
			return fmt.Errorf("storage: saving the start offset: %w", err)
		}
		l.mu.start = max(l.mu.start, offset)
	}
	n := 0 // the first n segments lie below offset
	for n < len(l.mu.segs)-1 && l.mu.segs[n+1].BaseOffset <= offset {
		n++
	}
	l.dropLocked(n, safeIndex)
	return nil
}
