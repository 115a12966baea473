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
					next = oor.Start
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
				if err := m.applyBatch(b.BaseOffset, b.Records, b.Data); err != nil {
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

// applyBatch applies the commands of one stored batch at base.
func (m *Metadata) applyBatch(base uint64, records uint32, data []byte) error {
	cmds, err := decodeCommands(data)
	if err != nil {
		return err
	}
	if uint32(len(cmds)) != records {
		return errCorruptCommand
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.mu.state
	for i, c := range cmds {
		off := base + uint64(i)
		if off < s.Applied {
			continue // applied already
		}
		var ns *State
		var err error
		switch {
		case c.Type == cmdSnapshot:
			ns, err = restoreSnapshot(s, c, off)
		case off > s.Applied:
			return fmt.Errorf("%w: record %d follows %d", errMetadataGap, off, s.Applied)
		default:
			ns, err = apply(s, c)
		}
		if errors.Is(err, errUnknownCommand) || errors.Is(err, errMetadataGap) {
			return err
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
	return nil
}

func (m *Metadata) fail(err error) {
	m.logger.Error("metadata log cannot be applied; this node's metadata is frozen", "err", err)
	m.mu.Lock()
	m.mu.failed = fmt.Errorf("%w: %w", ErrMetadataFailed, err)
	close(m.mu.changed)
	m.mu.changed = make(chan struct{})
	m.mu.Unlock()
}
