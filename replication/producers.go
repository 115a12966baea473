package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// maxProducerBatches is how many recent batches per producer id the state
// machine remembers to answer retries with their original offset.
const maxProducerBatches = 5

// batchMeta is one remembered idempotent batch.
type batchMeta struct {
	FirstSeq, LastSeq int32
	Offset            uint64    // base offset, valid once applied
	prop              *proposal // in-flight (proposal view only); nil once applied
}

// producerState is what a partition knows of one producer id.
type producerState struct {
	Epoch    int32
	LastTime int64       // leader time (unix ms) of its last batch
	Batches  []batchMeta // oldest first, at most maxProducerBatches
}

func (ps *producerState) lastSeq() (int32, bool) {
	if len(ps.Batches) == 0 {
		return 0, false
	}
	return ps.Batches[len(ps.Batches)-1].LastSeq, true
}

func (ps *producerState) add(b batchMeta) {
	if len(ps.Batches) == maxProducerBatches {
		copy(ps.Batches, ps.Batches[1:])
		ps.Batches = ps.Batches[:maxProducerBatches-1]
	}
	ps.Batches = append(ps.Batches, b)
}

// nextSeq is the sequence after s (sequences wrap to 0 after MaxInt32).
func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// producerTable maps producer ids to their state.
type producerTable map[int64]*producerState

func (t producerTable) clone() producerTable {
	c := make(producerTable, len(t))
	for id, ps := range t {
		c[id] = &producerState{Epoch: ps.Epoch, LastTime: ps.LastTime, Batches: append([]batchMeta(nil), ps.Batches...)}
	}
	return c
}

// errDuplicate is returned by check with the remembered batch.
type duplicateError struct{ b batchMeta }

func (*duplicateError) Error() string { return "replication: duplicate batch" }

// check validates an idempotent batch against the table: nil when it is the
// next batch, *duplicateError for a retry of a remembered batch, or
// ErrProducerFenced / ErrOutOfOrderSequence.
func (t producerTable) check(pid int64, epoch, baseSeq int32, records uint32) error {
	lastSeq := int64(baseSeq) + int64(records) - 1
	if baseSeq < 0 || lastSeq > math.MaxInt32 {
		return ErrInvalidBatch
	}
	ps := t[pid]
	if ps == nil {
		return nil // first batch seen from this producer: any sequence starts it
	}
	if epoch < ps.Epoch {
		return ErrProducerFenced
	}
	if epoch > ps.Epoch {
		if baseSeq != 0 {
			return fmt.Errorf("%w: new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, epoch, baseSeq)
		}
		return nil
	}
	for _, b := range ps.Batches {
		if b.FirstSeq == baseSeq && int64(b.LastSeq) == lastSeq {
			return &duplicateError{b: b}
		}
	}
	if last, ok := ps.lastSeq(); ok && baseSeq != nextSeq(last) {
		return fmt.Errorf("%w: expected %d, got %d", ErrOutOfOrderSequence, nextSeq(last), baseSeq)
	}
	return nil
}

// record remembers an accepted batch (applied or, in the proposal view,
// proposed).
func (t producerTable) record(pid int64, epoch, baseSeq int32, records uint32, now int64, b batchMeta) {
	b.FirstSeq = baseSeq
	b.LastSeq = baseSeq + int32(records) - 1
	ps := t[pid]
	if ps == nil || epoch > ps.Epoch {
		ps = &producerState{Epoch: epoch}
		t[pid] = ps
	}
	ps.LastTime = max(ps.LastTime, now)
	ps.add(b)
}

// expire forgets producers whose last batch is older than before (leader
// time) and that have nothing in flight. It returns how many it forgot.
func (t producerTable) expire(before int64) int {
	n := 0
	for id, ps := range t {
		if ps.LastTime >= before {
			continue
		}
		inflight := false
		for _, b := range ps.Batches {
			inflight = inflight || b.prop != nil
		}
		if !inflight {
			delete(t, id)
			n++
		}
	}
	return n
}

// Snapshot data (partition state at the snapshot index), big-endian:
//
//	version      uint8 (1)
//	nextOffset   uint64  offset of the first entry after the snapshot
//	clock        int64   latest leader time applied (unix ms)
//	lastSweep    int64   clock of the last producer expiry sweep
//	producers    uint32  count, then per producer (sorted by id):
//	  id         int64
//	  epoch      int32
//	  lastTime   int64
//	  batches    uint8   count (<= 5), then per batch:
//	    firstSeq int32, lastSeq int32, offset uint64
const (
	snapshotVersion   = 1
	snapHeaderLen     = 1 + 8 + 8 + 8 + 4
	producerHeaderLen = 8 + 4 + 8 + 1
)

var errBadSnapshot = errors.New("replication: malformed snapshot data")

type partitionSnapshot struct {
	NextOffset uint64
	Clock      int64
	LastSweep  int64
	Producers  producerTable
}

func encodeSnapshot(s *partitionSnapshot) []byte {
	ids := make([]int64, 0, len(s.Producers))
	for id := range s.Producers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	buf := make([]byte, 0, snapHeaderLen+len(ids)*(producerHeaderLen+maxProducerBatches*16))
	buf = append(buf, snapshotVersion)
	buf = binary.BigEndian.AppendUint64(buf, s.NextOffset)
	buf = binary.BigEndian.AppendUint64(buf, uint64(s.Clock))
	buf = binary.BigEndian.AppendUint64(buf, uint64(s.LastSweep))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(ids)))
	for _, id := range ids {
		ps := s.Producers[id]
		buf = binary.BigEndian.AppendUint64(buf, uint64(id))
		buf = binary.BigEndian.AppendUint32(buf, uint32(ps.Epoch))
		buf = binary.BigEndian.AppendUint64(buf, uint64(ps.LastTime))
		buf = append(buf, uint8(len(ps.Batches)))
		for _, b := range ps.Batches {
			buf = binary.BigEndian.AppendUint32(buf, uint32(b.FirstSeq))
			buf = binary.BigEndian.AppendUint32(buf, uint32(b.LastSeq))
			buf = binary.BigEndian.AppendUint64(buf, b.Offset)
		}
	}
	return buf
}

func decodeSnapshot(data []byte) (*partitionSnapshot, error) {
	if len(data) < snapHeaderLen || data[0] != snapshotVersion {
		return nil, errBadSnapshot
	}
	be := binary.BigEndian
	s := &partitionSnapshot{NextOffset: be.Uint64(data[1:]), Clock: int64(be.Uint64(data[9:])),
		LastSweep: int64(be.Uint64(data[17:])), Producers: producerTable{}}
	n := be.Uint32(data[25:])
	p := data[snapHeaderLen:]
	var prev int64
	for i := uint32(0); i < n; i++ {
		if len(p) < producerHeaderLen {
			return nil, errBadSnapshot
		}
		id := int64(be.Uint64(p))
		ps := &producerState{Epoch: int32(be.Uint32(p[8:])), LastTime: int64(be.Uint64(p[12:]))}
		nb := int(p[20])
		p = p[producerHeaderLen:]
		if nb > maxProducerBatches || len(p) < nb*16 {
			return nil, errBadSnapshot
		}
		if i > 0 && id <= prev { // canonical: ids strictly increasing
			return nil, errBadSnapshot
		}
		prev = id
		for j := 0; j < nb; j++ {
			ps.Batches = append(ps.Batches, batchMeta{
				FirstSeq: int32(be.Uint32(p)),
				LastSeq:  int32(be.Uint32(p[4:])),
				Offset:   be.Uint64(p[8:]),
			})
			p = p[16:]
		}
		s.Producers[id] = ps
	}
	if len(p) != 0 {
		return nil, errBadSnapshot
	}
	return s, nil
}
