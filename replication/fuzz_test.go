package replication

import (
	"bytes"
	"testing"
)

func FuzzDecodeCommand(f *testing.F) {
	b := ProduceBatch{Data: []byte("records"), Records: 3, MaxTimestamp: 42, ProducerID: 9, ProducerEpoch: 1, BaseSequence: 7}
	f.Add(encodeRecords(1, 2, &b, -1, 99))
	f.Add(encodeRecords(1, 2, &b, 1234, 1234))
	f.Add(encodeDeleteRecords(3, 4, 100))
	f.Add([]byte{})
	f.Add([]byte{1, 1})
	f.Add([]byte{2, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok, err := decodeCommand(data)
		recs, _ := entryMeta(data)
		if err != nil || !ok {
			if recs != 0 {
				t.Fatalf("undecodable command takes %d offsets", recs)
			}
			return
		}
		switch c.Type {
		case cmdRecords:
			if recs != c.Records {
				t.Fatalf("entryMeta records %d, command %d", recs, c.Records)
			}
			pb := ProduceBatch{Data: c.Batch, Records: c.Records, MaxTimestamp: c.MaxTimestamp,
				ProducerID: c.ProducerID, ProducerEpoch: c.ProducerEpoch, BaseSequence: c.BaseSequence}
			if re := encodeRecords(c.Origin, c.Seq, &pb, c.LogAppendTime, c.LeaderTime); !bytes.Equal(re, data) {
				t.Fatalf("re-encoding differs")
			}
		case cmdDeleteRecords:
			if recs != 0 {
				t.Fatalf("delete-records takes %d offsets", recs)
			}
			if re := encodeDeleteRecords(c.Origin, c.Seq, c.Before); !bytes.Equal(re, data) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(&partitionSnapshot{NextOffset: 5, Producers: producerTable{}}))
	f.Add(encodeSnapshot(&partitionSnapshot{NextOffset: 9, Clock: 77, LastSweep: 50, Producers: producerTable{
		1:  {Epoch: 2, LastTime: 70, Batches: []batchMeta{{FirstSeq: 0, LastSeq: 3, Offset: 1}, {FirstSeq: 4, LastSeq: 4, Offset: 8}}},
		-7: {Epoch: 0},
	}}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeSnapshot(data)
		if err != nil {
			return
		}
		if re := encodeSnapshot(s); !bytes.Equal(re, data) {
			t.Fatalf("re-encoding differs")
		}
	})
}
