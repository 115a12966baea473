package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Log format of __consumer_offsets.
//
// Every record is one fact about a group; its key names what the fact is
// about (so a compacting log keeps only the latest per key) and its value
// is the JSON encoding of record. A nil value is a tombstone. Records of
// one operation travel in one uncompressed batch, so they commit together.
//
//	key {"o",group,topic,partition}  offset: a committed offset
//	key {"g",group}                  group: epoch and assignor; tombstone = group deleted
//	key {"m",group,member}           member: id, subscription, epoch, assignment, target
//	key {"l"}                        load: written by a new coordinator; its offset is
//	                                 where replay stops
const recordVersion = 1

// Record types.
const (
	recOffset = "offset"
	recGroup  = "group"
	recMember = "member"
	recLoad   = "load"
	recDelete = "delete" // group deleted (with its offsets and members)
	recLeft   = "left"   // member gone
)

type record struct {
	V     int    `json:"v"`
	Type  string `json:"type"`
	Group string `json:"group,omitempty"`

	// offset
	Topic      string `json:"topic,omitempty"`
	Partition  int32  `json:"partition,omitempty"`
	Offset     int64  `json:"offset,omitempty"`
	Metadata   string `json:"metadata,omitempty"`
	CommitTime int64  `json:"commit_time,omitempty"`

	// group
	Epoch    int32    `json:"epoch,omitempty"`
	Assignor Assignor `json:"assignor,omitempty"`

	// member, left
	Member *memberRecord `json:"member,omitempty"`

	// load
	Node uint64 `json:"node,omitempty"`
}

type memberRecord struct {
	ID             string    `json:"id"`
	InstanceID     string    `json:"instance_id,omitempty"`
	ClientID       string    `json:"client_id,omitempty"`
	Topics         []string  `json:"topics,omitempty"`
	Pattern        string    `json:"pattern,omitempty"`
	Epoch          int32     `json:"epoch"`
	Assigned       []ownedTP `json:"assigned,omitempty"`
	Revoking       []ownedTP `json:"revoking,omitempty"`
	Target         []TP      `json:"target,omitempty"`
	SessionTimeout int64     `json:"session_ms"`
	_              struct{}  `json:"-"`
}

type ownedTP struct {
	TP
	Since int32 `json:"since"`
}

var errCorrupt = errors.New("coordinator: corrupt __consumer_offsets record")

func (r *record) key() []byte {
	var k []any
	switch r.Type {
	case recOffset:
		k = []any{"o", r.Group, r.Topic, r.Partition}
	case recGroup, recDelete:
		k = []any{"g", r.Group}
	case recMember, recLeft:
		k = []any{"m", r.Group, r.Member.ID}
	default:
		k = []any{"l"}
	}
	b, _ := json.Marshal(k)
	return b
}

// encodeRecords returns the stored bytes of one batch holding recs.
func encodeRecords(recs []*record, nowMs int64) ([]byte, error) {
	b := &sluicev1.RecordBatch{
		RecordCount:    int32(len(recs)),
		Compression:    sluicev1.Compression_COMPRESSION_NONE,
		TimestampType:  sluicev1.TimestampType_TIMESTAMP_TYPE_CREATE_TIME,
		MaxTimestampMs: nowMs,
		ProducerId:     -1,
		ProducerEpoch:  -1,
		BaseSequence:   -1,
	}
	for _, r := range recs {
		r.V = recordVersion
		var v []byte
		if r.Type != recDelete && r.Type != recLeft {
			var err error
			if v, err = json.Marshal(r); err != nil {
				return nil, err
			}
		} else {
			// A tombstone still says what it deletes, in its key.
			v = nil
		}
		b.Records = append(b.Records, &sluicev1.Record{Key: r.key(), Value: v, TimestampMs: nowMs})
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(b)
}

// decodeRecords decodes the records of one stored batch.
func decodeRecords(stored []byte) ([]*record, error) {
	var b sluicev1.RecordBatch
	if err := proto.Unmarshal(stored, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	if len(b.RecordsData) > 0 {
		return nil, fmt.Errorf("%w: compressed batch", errCorrupt)
	}
	out := make([]*record, 0, len(b.Records))
	for _, rr := range b.Records {
		r := new(record)
		if rr.Value == nil {
			// Tombstone: the key says what is gone.
			var k []json.RawMessage
			if err := json.Unmarshal(rr.Key, &k); err != nil || len(k) < 2 {
				return nil, fmt.Errorf("%w: tombstone key", errCorrupt)
			}
			var kind string
			if json.Unmarshal(k[0], &kind) != nil || json.Unmarshal(k[1], &r.Group) != nil {
				return nil, fmt.Errorf("%w: tombstone key", errCorrupt)
			}
			switch {
			case kind == "g" && len(k) == 2:
				r.Type = recDelete
			case kind == "m" && len(k) == 3:
				r.Type, r.Member = recLeft, &memberRecord{}
				if json.Unmarshal(k[2], &r.Member.ID) != nil {
					return nil, fmt.Errorf("%w: tombstone key", errCorrupt)
				}
			default:
				return nil, fmt.Errorf("%w: tombstone key %q", errCorrupt, rr.Key)
			}
			out = append(out, r)
			continue
		}
		if err := json.Unmarshal(rr.Value, r); err != nil {
			return nil, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		if r.V != recordVersion {
			return nil, fmt.Errorf("%w: version %d", errCorrupt, r.V)
		}
		if (r.Type == recMember || r.Type == recLeft) && r.Member == nil {
			return nil, fmt.Errorf("%w: member record without member", errCorrupt)
		}
		out = append(out, r)
	}
	return out, nil
}

// offsetRecords are the records of a commit.
func offsetRecords(group string, offsets []OffsetCommit, nowMs int64) []*record {
	out := make([]*record, 0, len(offsets))
	for _, o := range offsets {
		out = append(out, &record{Type: recOffset, Group: group, Topic: o.Topic, Partition: o.Partition,
			Offset: o.Offset, Metadata: o.Metadata, CommitTime: nowMs})
	}
	return out
}

// stateRecords are the records that bring a log from the membership in
// written (member ids last written) to the group's current membership;
// it updates written.
func (g *Group) stateRecords(written map[string]bool) []*record {
	out := []*record{{Type: recGroup, Group: g.ID, Epoch: g.Epoch, Assignor: g.Assignor}}
	for _, id := range slices.Sorted(maps.Keys(written)) {
		if _, ok := g.Members[id]; !ok {
			out = append(out, &record{Type: recLeft, Group: g.ID, Member: &memberRecord{ID: id}})
			delete(written, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(g.Members)) {
		m := g.Members[id]
		mr := &memberRecord{ID: id, InstanceID: m.InstanceID, ClientID: m.ClientID, Topics: m.Sub.Topics,
			Pattern: m.Sub.Pattern, Epoch: m.Epoch, SessionTimeout: m.SessionTimeout.Milliseconds(),
			Assigned: owned(m.Assigned), Revoking: owned(m.Revoking), Target: sortTPs(slices.Collect(maps.Keys(g.Target[id])))}
		out = append(out, &record{Type: recMember, Group: g.ID, Member: mr})
		written[id] = true
	}
	return out
}

func owned(m map[TP]int32) []ownedTP {
	out := make([]ownedTP, 0, len(m))
	for _, tp := range sortTPs(slices.Collect(maps.Keys(m))) {
		out = append(out, ownedTP{tp, m[tp]})
	}
	return out
}

// replay applies records read from the log to groups (by id). Members
// come back connected with a fresh session deadline from now: they are
// presumed alive until they fail to reconnect in time.
func replay(groups map[string]*Group, recs []*record, topics map[string]int32, now time.Time) {
	for _, r := range recs {
		if r.Type == recLoad {
			continue
		}
		g := groups[r.Group]
		if g == nil {
			if r.Type == recDelete || r.Type == recLeft {
				continue
			}
			g = NewGroup(r.Group, topics)
			groups[r.Group] = g
		}
		switch r.Type {
		case recOffset:
			g.Offsets[TP{r.Topic, r.Partition}] = Committed{Offset: r.Offset, Metadata: r.Metadata, CommitTime: r.CommitTime}
		case recGroup:
			g.Epoch, g.Assignor = r.Epoch, r.Assignor
		case recDelete:
			delete(groups, r.Group)
		case recLeft:
			delete(g.Members, r.Member.ID)
			delete(g.Target, r.Member.ID)
		case recMember:
			mr := r.Member
			sub := Subscription{Topics: mr.Topics, Pattern: mr.Pattern}
			c, err := compile(sub)
			if err != nil {
				continue // written by us, so it compiled then
			}
			m := &Member{ID: mr.ID, InstanceID: mr.InstanceID, ClientID: mr.ClientID, Sub: sub, sub: c, Epoch: mr.Epoch,
				Assigned: map[TP]int32{}, Revoking: map[TP]int32{}, SessionTimeout: time.Duration(mr.SessionTimeout) * time.Millisecond,
				Connected: true}
			m.Deadline = now.Add(m.SessionTimeout)
			for _, o := range mr.Assigned {
				m.Assigned[o.TP] = o.Since
			}
			for _, o := range mr.Revoking {
				m.Revoking[o.TP] = o.Since
			}
			g.Members[m.ID] = m
			t := map[TP]bool{}
			for _, tp := range mr.Target {
				t[tp] = true
			}
			g.Target[m.ID] = t
		}
	}
}
