package batch

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func seedBatches(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, c := range codecs {
		b, err := Encode(testRecords(4), c)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b.RecordsData)
	}
	return seeds
}

// FuzzNormalize feeds arbitrary records_data (with a matching crc, so the fuzzer gets past
// the checksum) and checks that whatever Normalize accepts is readable everywhere: the
// header parses back to what Normalize returned, and a client decodes exactly
// record_count records from the spliced batch in both formats.
func FuzzNormalize(f *testing.F) {
	for i, d := range seedBatches(f) {
		f.Add(d, int32(4), uint8(codecs[i]), int64(0))
	}
	f.Add([]byte{0x7a, 0x02, 0x10, 0x01}, int32(1), uint8(1), int64(5))
	f.Fuzz(func(t *testing.T, data []byte, count int32, codec uint8, pid int64) {
		b := &sluicev1.RecordBatch{RecordsData: data, RecordCount: count, Compression: sluicev1.Compression(codec),
			Crc: CRC(data), ProducerId: pid, ProducerEpoch: 1, BaseSequence: 2}
		stored, h, err := Normalize(b, Limits{MaxBytes: 1 << 20, MaxDecompressedBytes: 1 << 20, NowMs: 10})
		checkNormalizeIn(t, b, stored, h, err)
		if err != nil {
			var tl *TooLargeError
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) && !errors.As(err, &tl) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		ph, err := ParseHeader(stored)
		if err != nil || ph != h {
			t.Fatalf("ParseHeader = %+v, %v; Normalize said %+v", ph, err, h)
		}
		framed, fh, err := NormalizeFramed(b, Limits{MaxBytes: 1 << 20, MaxDecompressedBytes: 1 << 20, NowMs: 10}, 62)
		if err != nil || fh != h || !bytes.Equal(framed[62:], stored) || !bytes.Equal(framed[:62], make([]byte, 62)) {
			t.Fatalf("NormalizeFramed differs from Normalize: %v", err)
		}
		for _, f := range []sluicev1.RecordFormat{sluicev1.RecordFormat_RECORD_FORMAT_STORED, sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED} {
			got := fetched(t, stored, 3, f)
			recs, err := Records(got)
			if err != nil {
				t.Fatalf("%v: Records of an accepted batch: %v", f, err)
			}
			if len(recs) != int(h.RecordCount) {
				t.Fatalf("%v: %d records, header says %d", f, len(recs), h.RecordCount)
			}
		}
	})
}

// FuzzParseHeader checks that stored bytes from disk never panic the header parser and
// that what it accepts can be spliced.
func FuzzParseHeader(f *testing.F) {
	for _, d := range seedBatches(f) {
		b := &sluicev1.RecordBatch{RecordsData: d, RecordCount: 4, Crc: CRC(d)}
		for _, c := range codecs {
			b.Compression = c
			if stored, _, err := Normalize(b, Limits{}); err == nil {
				f.Add(stored)
			}
		}
	}
	f.Fuzz(func(t *testing.T, stored []byte) {
		h, err := ParseHeader(stored)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if h.RecordCount <= 0 {
			t.Fatalf("accepted record count %d", h.RecordCount)
		}
		rb, err := Splice(stored, 1, 1, sluicev1.RecordFormat_RECORD_FORMAT_STORED)
		if err != nil {
			t.Fatalf("Splice after ParseHeader: %v", err)
		}
		if _, err := proto.Marshal(rb); err != nil {
			t.Fatalf("marshal: %v", err)
		}
		_, _ = Splice(stored, 1, 1, sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED)
	})
}

// FuzzRecords decodes arbitrary fetched batches as a client would.
func FuzzRecords(f *testing.F) {
	for i, d := range seedBatches(f) {
		f.Add(d, int32(4), uint8(codecs[i]), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, count int32, codec uint8, fixCRC bool) {
		b := &sluicev1.RecordBatch{RecordsData: data, RecordCount: count, Compression: sluicev1.Compression(codec)}
		if fixCRC {
			b.Crc = CRC(data)
		}
		recs, err := Records(b)
		if err == nil && len(recs) != int(count) {
			t.Fatalf("%d records, count %d", len(recs), count)
		}
	})
}

// FuzzDecompress checks every codec's decoder on arbitrary input against the size bound
// and, for what decodes, that compress/decompress round-trips.
func FuzzDecompress(f *testing.F) {
	for _, c := range codecs {
		d, _ := compress(nil, c, bytes.Repeat([]byte("sluice"), 100))
		f.Add(d, uint8(c), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, codec uint8, strict bool) {
		c := sluicev1.Compression(codec % 6)
		const limit = 64 << 10
		out, err := decompress(nil, c, data, limit, strict)
		if err != nil {
			return
		}
		if len(out) > limit {
			t.Fatalf("%v: %d bytes past the limit", c, len(out))
		}
		again, err := compress(nil, c, out)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decompress(nil, c, again, limit, true)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("%v: round trip failed: %v", c, err)
		}
	})
}

// checkNormalizeIn checks that NormalizeFramedIn, with room of several sizes in front of
// the records, accepts and rejects what Normalize does and builds the same bytes, without
// changing the records.
func checkNormalizeIn(t *testing.T, b *sluicev1.RecordBatch, stored []byte, h Header, nerr error) {
	t.Helper()
	const reserve = 62
	for _, roomLen := range []int{0, 1, reserve + 20, reserve + 80} {
		buf := make([]byte, roomLen+len(b.RecordsData))
		copy(buf[roomLen:], b.RecordsData)
		in := &sluicev1.RecordBatch{RecordsData: buf[roomLen:], RecordCount: b.RecordCount, Compression: b.Compression,
			Crc: b.Crc, ProducerId: b.ProducerId, ProducerEpoch: b.ProducerEpoch, BaseSequence: b.BaseSequence}
		framed, fh, err := NormalizeFramedIn(in, Limits{MaxBytes: 1 << 20, MaxDecompressedBytes: 1 << 20, NowMs: 10}, reserve, buf[:roomLen])
		if (err == nil) != (nerr == nil) || (err != nil && err.Error() != nerr.Error()) {
			t.Fatalf("room %d: NormalizeFramedIn: %v, Normalize: %v", roomLen, err, nerr)
		}
		if !bytes.Equal(buf[roomLen:], b.RecordsData) {
			t.Fatalf("room %d: the records were changed", roomLen)
		}
		if err != nil {
			continue
		}
		if fh != h || !bytes.Equal(framed[reserve:], stored) || !bytes.Equal(framed[:reserve], make([]byte, reserve)) {
			t.Fatalf("room %d: NormalizeFramedIn differs from Normalize", roomLen)
		}
		if inPlace := len(b.RecordsData) > 0 && &framed[len(framed)-1] == &buf[len(buf)-1]; inPlace != (roomLen >= reserve+len(stored)-len(b.RecordsData)) {
			t.Fatalf("room %d: built in place %v, stored header %d bytes", roomLen, inPlace, len(stored)-len(b.RecordsData))
		}
	}
}
