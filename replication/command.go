package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Command encoding (the Data of every normal Raft entry of a partition).
//
// All integers are big-endian. Every command starts with a 2-byte header:
//
//	version  uint8  (commandVersion = 1)
//	type     uint8  (cmdRecords, cmdDeleteRecords)
//
// followed by the proposal identity, which lets the proposing node match
// the applied entry to its waiting caller:
//
//	origin   uint64 (node id that proposed)
//	seq      uint64 (proposal sequence on that node, unique per host run)
//
// cmdRecords continues with (recordsHeaderLen bytes in total):
//
//	records        uint32 (offsets the batch takes, > 0)
//	maxTimestamp   int64  (unix ms, for the time index)
//	producerID     int64  (-1: not idempotent)
//	producerEpoch  int32
//	baseSequence   int32
//	logAppendTime  int64  (leader stamp, -1 when the topic uses create time)
//	leaderTime     int64  (unix ms on the leader at proposal: the replicated
//	                       clock that expires idle producer ids)
//	batch          the stored batch bytes, to the end of the entry
//
// cmdDeleteRecords continues with:
//
//	before   uint64 (new log start offset requested)
//
// Empty entries (Raft's leader no-op) carry no command. A reader that sees
// an unknown version or type must fail loudly: entries are replicated and
// every replica must interpret them identically.
const (
	commandVersion = 1

	cmdRecords       = 1
	cmdDeleteRecords = 2

	cmdPrefixLen     = 2 + 8 + 8
	recordsHeaderLen = cmdPrefixLen + 4 + 8 + 8 + 4 + 4 + 8 + 8
	deleteRecordsLen = cmdPrefixLen + 8
)

var errBadCommand = errors.New("replication: malformed command")

// command is a decoded entry payload. For cmdRecords, Batch aliases the
// entry data (no copy).
type command struct {
	Type   uint8
	Origin uint64
	Seq    uint64

	Records       uint32
	MaxTimestamp  int64
	ProducerID    int64
	ProducerEpoch int32
	BaseSequence  int32
	LogAppendTime int64
	LeaderTime    int64
	Batch         []byte

	Before uint64
}

func (c *command) idempotent() bool { return c.ProducerID >= 0 }

// lastSequence is the sequence of the batch's last record.
func (c *command) lastSequence() int32 {
	return c.BaseSequence + int32(c.Records) - 1
}

// encodeRecords encodes a cmdRecords command: in b.Framed when it holds
// the batch behind room for the header, else in a new buffer.
func encodeRecords(origin, seq uint64, b *ProduceBatch, logAppendTime, leaderTime int64) []byte {
	if f := b.Framed; len(f) == recordsHeaderLen+len(b.Data) && len(b.Data) > 0 && &f[recordsHeaderLen] == &b.Data[0] {
		putRecordsHeader(f, origin, seq, b, logAppendTime, leaderTime)
		return f
	}
	var hdr [recordsHeaderLen]byte
	putRecordsHeader(hdr[:], origin, seq, b, logAppendTime, leaderTime)
	// One append: the runtime does not zero memory it is about to copy
	// over (make would clear the whole buffer first; batches are large).
	return append(hdr[:], b.Data...)
}

func putRecordsHeader(hdr []byte, origin, seq uint64, b *ProduceBatch, logAppendTime, leaderTime int64) {
	hdr[0] = commandVersion
	hdr[1] = cmdRecords
	be := binary.BigEndian
	be.PutUint64(hdr[2:], origin)
	be.PutUint64(hdr[10:], seq)
	be.PutUint32(hdr[18:], b.Records)
	be.PutUint64(hdr[22:], uint64(b.MaxTimestamp))
	be.PutUint64(hdr[30:], uint64(b.ProducerID))
	be.PutUint32(hdr[38:], uint32(b.ProducerEpoch))
	be.PutUint32(hdr[42:], uint32(b.BaseSequence))
	be.PutUint64(hdr[46:], uint64(logAppendTime))
	be.PutUint64(hdr[54:], uint64(leaderTime))
}

// stampRecords sets the proposal sequence, log-append time and leader
// time of an encoded cmdRecords command.
func stampRecords(buf []byte, seq uint64, logAppendTime, leaderTime int64) {
	binary.BigEndian.PutUint64(buf[10:], seq)
	binary.BigEndian.PutUint64(buf[46:], uint64(logAppendTime))
	binary.BigEndian.PutUint64(buf[54:], uint64(leaderTime))
}

// encodeDeleteRecords encodes a cmdDeleteRecords command.
func encodeDeleteRecords(origin, seq, before uint64) []byte {
	buf := make([]byte, deleteRecordsLen)
	buf[0] = commandVersion
	buf[1] = cmdDeleteRecords
	binary.BigEndian.PutUint64(buf[2:], origin)
	binary.BigEndian.PutUint64(buf[10:], seq)
	binary.BigEndian.PutUint64(buf[18:], before)
	return buf
}

// decodeCommand decodes entry data. Empty data is not a command (ok=false,
// err=nil).
func decodeCommand(data []byte) (c command, ok bool, err error) {
	if len(data) == 0 {
		return c, false, nil
	}
	if len(data) < cmdPrefixLen {
		return c, false, fmt.Errorf("%w: %d bytes", errBadCommand, len(data))
	}
	if data[0] != commandVersion {
		return c, false, fmt.Errorf("%w: version %d", errBadCommand, data[0])
	}
	be := binary.BigEndian
	c.Type = data[1]
	c.Origin = be.Uint64(data[2:])
	c.Seq = be.Uint64(data[10:])
	switch c.Type {
	case cmdRecords:
		if len(data) < recordsHeaderLen {
			return c, false, fmt.Errorf("%w: records header %d bytes", errBadCommand, len(data))
		}
		c.Records = be.Uint32(data[18:])
		c.MaxTimestamp = int64(be.Uint64(data[22:]))
		c.ProducerID = int64(be.Uint64(data[30:]))
		c.ProducerEpoch = int32(be.Uint32(data[38:]))
		c.BaseSequence = int32(be.Uint32(data[42:]))
		c.LogAppendTime = int64(be.Uint64(data[46:]))
		c.LeaderTime = int64(be.Uint64(data[54:]))
		c.Batch = data[recordsHeaderLen:]
		if c.Records == 0 {
			return c, false, fmt.Errorf("%w: batch without records", errBadCommand)
		}
	case cmdDeleteRecords:
		if len(data) != deleteRecordsLen {
			return c, false, fmt.Errorf("%w: delete-records %d bytes", errBadCommand, len(data))
		}
		c.Before = be.Uint64(data[18:])
	default:
		return c, false, fmt.Errorf("%w: type %d", errBadCommand, c.Type)
	}
	return c, true, nil
}

// entryMeta returns the offsets and max timestamp the storage entry for
// data takes. The leader-stamped log-append time replaces the producer's
// timestamps for the time index when present. Undecodable data takes no
// offsets (it is rejected at apply).
func entryMeta(data []byte) (records uint32, maxTS int64) {
	if len(data) < recordsHeaderLen || data[0] != commandVersion || data[1] != cmdRecords {
		return 0, 0
	}
	be := binary.BigEndian
	records = be.Uint32(data[18:])
	maxTS = int64(be.Uint64(data[22:]))
	if lat := int64(be.Uint64(data[46:])); lat >= 0 {
		maxTS = lat
	}
	return records, maxTS
}
