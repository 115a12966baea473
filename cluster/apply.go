package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/storage"
)

// applyLoop follows the metadata partition: it reads committed records
// (up to the high watermark) in order and applies them to the state.
func (m *Metadata) applyLoop() {
	defer m.wg.Done()
	next := uint64(0)
	// seeking: the log starts past what this node applied, so its state
	// can only come from a snapshot record; the records before the first
	// one are skipped (they are in it). A replica that joins the group
	// through a Raft snapshot of the partition starts where that snapshot
	// left the log, which can be before the compaction point.
	seeking := false
	retry := time.NewTimer(0)
	<-retry.C
	defer retry.Stop()
	for {
		changed := m.part.Changed()
		for next < m.part.HighWatermark() {
			batches, err := m.part.Read(next, 1<<20)
			if err != nil {
				var oor *storage.OffsetOutOfRangeError
				if errors.As(err, &oor) && oor.Start > next {
					// The log was compacted past what this node applied:
					// it starts with a snapshot record, which replaces the
					// state (applyBatch fails on anything else).
					m.logger.Info("metadata log compacted past the applied offset; reading from its snapshot",
						"applied", next, "start", oor.Start)
					next, seeking = oor.Start, true
					continue
				}
				m.logger.Warn("reading the metadata log", "offset", next, "err", err)
				retry.Reset(200 * time.Millisecond)
				select {
				case <-retry.C:
					continue
				case <-m.stop:
					return
				}
			}
			if len(batches) == 0 {
				break
			}
			for _, b := range batches {
				if seeking, err = m.applyBatch(b.BaseOffset, b.Records, b.Data, seeking); err != nil {
					m.fail(err)
					return
				}
				next = b.BaseOffset + uint64(b.Records)
			}
		}
		select {
		case <-changed:
		case <-m.stop:
			return
		}
	}
}

// applyBatch applies the commands of one stored batch at base. While
// seeking, it skips the records up to the first snapshot of the state
// before it, and reports whether it is still seeking.
func (m *Metadata) applyBatch(base uint64, records uint32, data []byte, seeking bool) (bool, error) {
	cmds, err := decodeCommands(data)
	if err != nil {
		return seeking, err
	}
	if uint32(len(cmds)) != records {
		return seeking, errCorruptCommand
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.mu.state
	for i, c := range cmds {
		off := base + uint64(i)
		if seeking {
			if c.Type != cmdSnapshot || snapApplied(c.Snapshot) != off {
				m.logger.Debug("metadata record before the first snapshot skipped", "offset", off)
				continue
			}
			seeking = false
		}
		if off < s.Applied {
			continue // applied already
		}
		var ns *State
		var err error
		switch {
		case c.Type == cmdSnapshot:
			ns, err = restoreSnapshot(s, c, off)
		case off > s.Applied:
			return seeking, fmt.Errorf("%w: record %d follows %d", errMetadataGap, off, s.Applied)
		default:
			ns, err = apply(s, c)
		}
		if errors.Is(err, errUnknownCommand) || errors.Is(err, errMetadataGap) {
			return seeking, err
		}
		if err != nil {
			m.logger.Debug("metadata command skipped", "offset", off, "type", c.Type, "err", err)
			m.mu.rejected[off] = err
			ns = s.clone()
		}
		ns.Applied = off + 1
		s = ns
	}
	m.mu.state = s
	for off := range m.mu.rejected {
		if off+4096 < s.Applied {
			delete(m.mu.rejected, off)
		}
	}
	close(m.mu.changed)
	m.mu.changed = make(chan struct{})
	return seeking, nil
}

func (m *Metadata) fail(err error) {
	m.logger.Error("metadata log cannot be applied; this node's metadata is frozen", "err", err)
	m.mu.Lock()
	m.mu.failed = fmt.Errorf("%w: %w", ErrMetadataFailed, err)
	close(m.mu.changed)
	m.mu.changed = make(chan struct{})
	m.mu.Unlock()
}
