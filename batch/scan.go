package batch

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Record and RecordHeader field numbers.
const (
	recKey       = 1
	recValue     = 2
	recHeaders   = 3
	recTimestamp = 4
	hdrKey       = 1
	hdrValue     = 2
)

// scanResult is what a walk over encoded records found.
type scanResult struct {
	count  int
	maxTs  int64 // largest record timestamp; 0 if none is set
	zeroTs bool  // some record has no timestamp
}

// scanRecords walks data, a sequence of RecordBatch field-15 entries (tag, length,
// Record), checking that every record decodes as a sluicev1.Record with the generated
// code: only known fields with their wire types, header keys valid UTF-8, timestamps not
// negative. It allocates nothing.
func scanRecords(data []byte) (scanResult, error) {
	var res scanResult
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return res, corrupt("record %d: bad tag", res.count)
		}
		if num != fieldRecords || typ != protowire.BytesType {
			return res, corrupt("record %d: field %d wire type %d where a record belongs", res.count, num, typ)
		}
		rec, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return res, corrupt("record %d: truncated", res.count)
		}
		b = b[n+m:]
		ts, err := scanRecord(rec)
		if err != nil {
			return res, corrupt("record %d: %v", res.count, err)
		}
		if ts == 0 {
			res.zeroTs = true
		} else if ts > res.maxTs {
			res.maxTs = ts
		}
		res.count++
	}
	return res, nil
}

type scanError string

func (e scanError) Error() string { return string(e) }

const (
	errBadTag       = scanError("bad tag")
	errWireType     = scanError("wrong wire type")
	errUnknownField = scanError("unknown field")
	errTruncated    = scanError("truncated field")
	errNegativeTs   = scanError("negative timestamp")
	errBadUTF8      = scanError("header key is not valid UTF-8")
)

// scanRecord checks one encoded Record and returns its timestamp (the last one, as the
// generated code would keep).
func scanRecord(b []byte) (int64, error) {
	var ts int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errBadTag
		}
		b = b[n:]
		switch num {
		case recKey, recValue, recHeaders:
			if typ != protowire.BytesType {
				return 0, errWireType
			}
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return 0, errTruncated
			}
			if num == recHeaders {
				if err := scanHeader(v); err != nil {
					return 0, err
				}
			}
			b = b[m:]
		case recTimestamp:
			if typ != protowire.VarintType {
				return 0, errWireType
			}
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, errTruncated
			}
			ts = int64(v)
			b = b[m:]
		default:
			return 0, errUnknownField
		}
	}
	if ts < 0 {
		return 0, errNegativeTs
	}
	return ts, nil
}

func scanHeader(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadTag
		}
		b = b[n:]
		if num != hdrKey && num != hdrValue {
			return errUnknownField
		}
		if typ != protowire.BytesType {
			return errWireType
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return errTruncated
		}
		if num == hdrKey && !utf8.Valid(v) {
			return errBadUTF8
		}
		b = b[m:]
	}
	return nil
}
