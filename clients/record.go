package clients

import (
	"time"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Header is one application header of a record.
type Header struct {
	Key   string
	Value []byte
}

// Record is a record to produce or one consumed.
//
// To produce, set Topic, Value and optionally Key, Headers, Timestamp (zero: now) and,
// with ManualPartitioning, Partition. When the record is acknowledged the producer fills
// in Partition, Offset and, for log-append-time topics, Timestamp.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
	// LeaderEpoch of the batch a consumed record came from.
	LeaderEpoch int64
}

// recordScratch is a sluicev1.Record (and its headers) reused to encode records one
// after another: batch.Builder copies a record's bytes when it appends it.
type recordScratch struct {
	r  sluicev1.Record
	hs []sluicev1.RecordHeader
	hp []*sluicev1.RecordHeader
}

// of sets the scratch record to r and returns it; it is valid until the next call.
func (s *recordScratch) of(r *Record) *sluicev1.Record {
	s.r.Key, s.r.Value, s.r.TimestampMs, s.r.Headers = r.Key, r.Value, r.Timestamp.UnixMilli(), nil
	if n := len(r.Headers); n > 0 {
		if cap(s.hs) < n {
			s.hs = make([]sluicev1.RecordHeader, n)
			s.hp = make([]*sluicev1.RecordHeader, n)
			for i := range s.hs {
				s.hp[i] = &s.hs[i]
			}
		}
		for i, h := range r.Headers {
			s.hs[i].Key, s.hs[i].Value = h.Key, h.Value
		}
		s.r.Headers = s.hp[:n]
	}
	return &s.r
}

func fromProtoRecord(topic string, partition int32, offset, leaderEpoch int64, pr *sluicev1.Record) *Record {
	return fillProtoRecord(new(Record), topic, partition, offset, leaderEpoch, pr)
}

// fillProtoRecord sets r from a consumed record; Key and Value alias pr's.
func fillProtoRecord(r *Record, topic string, partition int32, offset, leaderEpoch int64, pr *sluicev1.Record) *Record {
	*r = Record{
		Topic: topic, Partition: partition, Offset: offset, LeaderEpoch: leaderEpoch,
		Key: pr.GetKey(), Value: pr.GetValue(), Timestamp: time.UnixMilli(pr.GetTimestampMs()),
	}
	if hs := pr.GetHeaders(); len(hs) > 0 {
		r.Headers = make([]Header, len(hs))
		for i, h := range hs {
			r.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	return r
}

// Offset is where to start reading a partition: AtStart, AtEnd, At or AfterTime.
type Offset struct {
	kind   offsetKind
	offset int64
	ts     time.Time
}

type offsetKind int8

const (
	offsetStart offsetKind = iota
	offsetEnd
	offsetExact
	offsetTime
)

// AtStart is the earliest offset still in the log.
func AtStart() Offset { return Offset{kind: offsetStart} }

// AtEnd is the high watermark: only records produced from now on.
func AtEnd() Offset { return Offset{kind: offsetEnd} }

// At is an exact offset.
func At(offset int64) Offset { return Offset{kind: offsetExact, offset: offset} }

// AfterTime is the first record with a timestamp at or after t (the high watermark if
// none is).
func AfterTime(t time.Time) Offset { return Offset{kind: offsetTime, ts: t} }

func (o Offset) String() string {
	switch o.kind {
	case offsetStart:
		return "start"
	case offsetEnd:
		return "end"
	case offsetTime:
		return "time " + o.ts.UTC().Format(time.RFC3339Nano)
	}
	return "offset " + itoa(o.offset)
}

func (o Offset) spec() *sluicev1.OffsetSpec {
	switch o.kind {
	case offsetStart:
		return &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}}
	case offsetTime:
		return &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_TimestampMs{TimestampMs: o.ts.UnixMilli()}}
	}
	return &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}
}
