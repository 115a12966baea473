package clients

import (
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Decoding plain records straight into Records (decodeFetchRecords). A record is
// decoded as proto.Unmarshal decodes a sluicev1.Record — the last key, value and
// timestamp win, unknown fields and known fields of another wire type are skipped,
// header keys must be UTF-8 — and its key, value and header values alias the response.
// Until batchRecords completes it, a decoded Record holds its timestamp_ms in Offset.

// recordFlatDirect is recordFlat for a Record: a record in one segment with nothing but
// canonical key, value and timestamp tags. Otherwise it leaves rec empty and reports
// false, and recordDirect decodes it.
func recordFlatDirect(b []byte, rec *Record) bool {
	key, value, ts, ok := flatFields(b)
	if !ok {
		*rec = Record{}
		return false
	}
	rec.Key, rec.Value, rec.Offset = key, value, ts
	return true
}

// recordDirect is recordInto for a Record (unknown fields are dropped).
func recordDirect(r *wireReader, rec *Record) error {
	key, value, ts, _, err := recordFields(r, func(r *wireReader) error {
		var h Header
		if err := headerDirect(r, &h); err != nil {
			return err
		}
		rec.Headers = append(rec.Headers, h)
		return nil
	})
	if err != nil {
		return err
	}
	rec.Key, rec.Value, rec.Offset = key, value, ts
	return nil
}

// headerDirect is header for a Header.
func headerDirect(r *wireReader, h *Header) error {
	key, value, _, err := headerFields(r)
	if err != nil {
		return err
	}
	h.Key, h.Value = key, value
	return nil
}

// batchRecords returns the records of a fetched batch of topic/partition, complete:
// offsets, leader epoch and effective timestamps (under LOG_APPEND_TIME every record
// has the batch's max_timestamp_ms, under create time a record without one has it).
// plain are the batch's records as decodeFetchRecords decoded them (nil when it had
// none: then the batch's own records or records_data are decoded, decompressed and
// checked with batch.Records); badCRC reports that their CRC did not match.
func batchRecords(rb *sluicev1.RecordBatch, plain []Record, badCRC bool, topic string, partition int32) ([]Record, error) {
	var recs []Record
	if len(plain) == 0 {
		rs, err := batch.Records(rb)
		if err == nil && badCRC {
			err = fmt.Errorf("crc %08x does not match the records", rb.GetCrc())
		}
		if err != nil {
			return nil, err
		}
		recs = make([]Record, len(rs)) // one allocation for the batch's records
		for i, r := range rs {
			fillProtoRecord(&recs[i], topic, partition, 0, 0, r)
			recs[i].Offset = r.GetTimestampMs() // stamped below like plain records
		}
	} else {
		// The checks batch.Records makes of plain records.
		switch {
		case len(rb.GetRecordsData()) > 0:
			return nil, &batch.InvalidError{Field: "records_data", Msg: "set together with records"}
		case rb.GetRecordCount() != 0 && int(rb.GetRecordCount()) != len(plain):
			return nil, fmt.Errorf("%w: record_count %d, found %d records", batch.ErrCorrupt, rb.GetRecordCount(), len(plain))
		case badCRC:
			return nil, fmt.Errorf("crc %08x does not match the records", rb.GetCrc())
		}
		recs = plain
	}
	lat := rb.GetTimestampType() == sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME
	base, epoch, maxTs := rb.GetBaseOffset(), rb.GetLeaderEpoch(), rb.GetMaxTimestampMs()
	for i := range recs {
		r := &recs[i]
		ts := r.Offset
		if lat || ts == 0 {
			ts = maxTs
		}
		r.Topic, r.Partition, r.Offset, r.LeaderEpoch, r.Timestamp = topic, partition, base+int64(i), epoch, time.UnixMilli(ts)
	}
	return recs, nil
}

// records returns the records of a batch of the reply (batchRecords).
func (r *fetchReply) records(rb *sluicev1.RecordBatch, topic string, partition int32) ([]Record, error) {
	return batchRecords(rb, r.plain[rb], slices.Contains(r.badCRC, rb), topic, partition)
}
