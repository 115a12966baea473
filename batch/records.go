package batch

import (
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Records returns the records of a fetched batch in either shape. For records_data it
// verifies the CRC, decompresses (within HardMaxDecompressedBytes), checks every record
// and the record count, and decodes them. For plain records it returns b.Records.
//
// Timestamps are made effective in the returned records: under LOG_APPEND_TIME every
// record gets max_timestamp_ms, under create time a record without a timestamp gets
// max_timestamp_ms (the time the server received it). For plain records this updates
// b.Records in place.
func Records(b *sluicev1.RecordBatch) ([]*sluicev1.Record, error) {
	if b == nil {
		return nil, invalid("batch", "missing")
	}
	var recs []*sluicev1.Record
	switch {
	case len(b.Records) > 0 && len(b.RecordsData) > 0:
		return nil, invalid("records_data", "set together with records")
	case len(b.Records) > 0:
		recs = b.Records
		if b.RecordCount != 0 && int(b.RecordCount) != len(recs) {
			return nil, corrupt("record_count %d, found %d records", b.RecordCount, len(recs))
		}
	case len(b.RecordsData) > 0:
		if crc := CRC(b.RecordsData); crc != b.Crc {
			return nil, corrupt("crc %08x, records_data has %08x", b.Crc, crc)
		}
		if !validCompression(b.Compression) {
			return nil, invalid("compression", "unknown codec %d", b.Compression)
		}
		buf := getScratch()
		defer putScratch(buf)
		plain, err := decompress((*buf)[:0], b.Compression, b.RecordsData, HardMaxDecompressedBytes, false)
		if err != nil {
			return nil, err
		}
		*buf = plain
		res, err := scanRecords(plain)
		if err != nil {
			return nil, err
		}
		if res.count != int(b.RecordCount) {
			return nil, corrupt("record_count %d, found %d records", b.RecordCount, res.count)
		}
		// plain holds only field-15 entries: decoding it as a RecordBatch yields the
		// records. The decoded records copy their bytes, so plain can be reused.
		var tmp sluicev1.RecordBatch
		if err := proto.Unmarshal(plain, &tmp); err != nil {
			return nil, corrupt("records: %v", err)
		}
		recs = tmp.Records
	default:
		if b.RecordCount != 0 {
			return nil, corrupt("record_count %d, found no records", b.RecordCount)
		}
		return nil, nil
	}
	for _, r := range recs {
		if b.TimestampType == sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME || r.TimestampMs == 0 {
			r.TimestampMs = b.MaxTimestampMs
		}
	}
	return recs, nil
}
