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

func (r *Record) toProto() *sluicev1.Record {
	pr := &sluicev1.Record{Key: r.Key, Value: r.Value, TimestampMs: r.Timestamp.UnixMilli()}
	if len(r.Headers) > 0 {
		pr.Headers = make([]*sluicev1.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			pr.Headers[i] = &sluicev1.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return pr
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
