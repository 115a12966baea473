package storage

import "fmt"

// ApplyRetention deletes whole old segments older than retentionMs (by
// their largest batch timestamp, or creation time without batches) or
// beyond retentionBytes (<= 0 = unlimited), never one holding an entry
// above safeIndex or above the latest snapshot, never the active segment.
// It returns how many segments it deleted.
func (l *Log) ApplyRetention(safeIndex uint64, retentionMs, retentionBytes int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, err
	}
	limit := min(safeIndex, l.mu.st.SnapIndex)
	var total int64
	for _, s := range l.mu.segs {
		total += s.size
	}
	now := l.opts.Now().UnixMilli()
	n := 0
	for len(l.mu.segs) > 1 {
		s := l.mu.segs[0]
		if l.mu.segs[1].BaseIndex-1 > limit {
			break
		}
		del := retentionBytes > 0 && total-s.size >= retentionBytes
		if !del && retentionMs > 0 {
			ts, err := l.segMaxTsLocked(0)
			if err != nil {
				return n, err
			}
			if ts == noTimestamp {
				ts = s.Created
			}
			del = now-ts > retentionMs
		}
		if !del {
			break
		}
		l.dropFirstLocked()
		total -= s.size
		n++
	}
	return n, nil
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
// durably, and deletes whole segments entirely below it that hold no entry
// above safeIndex or the latest snapshot. offset beyond NextOffset returns
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
	limit := min(safeIndex, l.mu.st.SnapIndex)
	for len(l.mu.segs) > 1 && l.mu.segs[1].BaseOffset <= offset && l.mu.segs[1].BaseIndex-1 <= limit {
		l.dropFirstLocked()
	}
	return nil
}
