package clients

import (
	"bytes"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func marshalPieces(t *testing.T, m proto.Message) []byte {
	t.Helper()
	bs, err := testProduceCodec().Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return bs.Materialize()
}

func testProduceCodec() produceCodec {
	return produceCall.(grpc.ForceCodecV2CallOption).CodecV2.(produceCodec)
}

// FuzzProduceCodecMarshal checks that the pieces produceCodec sends are, put together,
// exactly proto.Marshal's encoding of the request.
func FuzzProduceCodecMarshal(f *testing.F) {
	f.Add(int32(3), uint64(7), "t", int64(5), int32(2), 5000, false, []byte(nil))
	f.Add(int32(-1), uint64(0), "", int64(0), int32(0), 4096, true, []byte{0x98, 0x06, 0x01})
	f.Add(int32(1<<20), uint64(1<<40), "topic", int64(-1), int32(-1), 70000, false, []byte{0x80, 0x01, 0x05})
	f.Fuzz(func(t *testing.T, part int32, corr uint64, topic string, pid int64, timeout int32, n int, noBatchFields bool, unknown []byte) {
		if n < 0 || n > 1<<20 {
			return
		}
		rb := &sluicev1.RecordBatch{RecordsData: bytes.Repeat([]byte{0xab}, n)}
		if !noBatchFields {
			rb.RecordCount, rb.Crc, rb.ProducerId, rb.ProducerEpoch, rb.MaxTimestampMs = 3, batch.CRC(rb.RecordsData), pid, 1, 99
		}
		req := &sluicev1.ProduceRequest{Topic: topic, Partition: &part, Acks: sluicev1.Acks_ACKS_ALL, Batch: rb,
			TransactionalId: topic, TimeoutMs: timeout}
		if len(unknown) > 0 {
			req.ProtoReflect().SetUnknown(unknown)
		}
		for _, m := range []proto.Message{req, &sluicev1.ProduceStreamRequest{Request: req, CorrelationId: corr}} {
			want, err := proto.Marshal(m)
			if err != nil {
				return // invalid UTF-8 topic: the codec falls back to proto.Marshal's own error
			}
			if got := marshalPieces(t, m); !bytes.Equal(got, want) {
				t.Fatalf("%T: pieces give\n%x\nproto.Marshal gives\n%x", m, got, want)
			}
		}
		if len(rb.RecordsData) != n {
			t.Fatal("the request was changed")
		}
	})
}

// TestProduceCodecAliasesRecords checks that a large batch is sent from its own buffer.
func TestProduceCodecAliasesRecords(t *testing.T) {
	rb := &sluicev1.RecordBatch{RecordCount: 1, RecordsData: bytes.Repeat([]byte{1}, 8192)}
	bs, err := testProduceCodec().Marshal(&sluicev1.ProduceStreamRequest{
		Request: &sluicev1.ProduceRequest{Topic: "t", Batch: rb}, CorrelationId: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 || &bs[1].ReadOnlyData()[0] != &rb.RecordsData[0] {
		t.Fatalf("records_data was copied (%d pieces)", len(bs))
	}
}
