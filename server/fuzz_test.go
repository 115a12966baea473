package server_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

// fuzzTarget is the topic fuzzed requests are steered to.
const fuzzTarget = "fz"

func fuzzSeeds(f *testing.F) {
	enc, err := batch.Encode(records(3, "f"), sluicev1.Compression_COMPRESSION_SNAPPY)
	if err != nil {
		f.Fatal(err)
	}
	seeds := []proto.Message{
		&sluicev1.ProduceRequest{Topic: fuzzTarget, Batch: &sluicev1.RecordBatch{Records: records(2, "s")}},
		&sluicev1.ProduceRequest{Topic: fuzzTarget, Partition: proto.Int32(1), Batch: enc},
		&sluicev1.FetchRequest{Topic: fuzzTarget, Partitions: []*sluicev1.FetchPosition{{Partition: 0}, {Partition: 1, Offset: 2}}},
		&sluicev1.CreateTopicRequest{Name: "x", Partitions: 2, Configs: map[string]string{"retention.ms": "10"}},
		&sluicev1.AlterTopicConfigRequest{Name: fuzzTarget, Set: map[string]string{"max.message.bytes": "100"}},
		&sluicev1.ListOffsetsRequest{Topic: fuzzTarget, Spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_TimestampMs{TimestampMs: 5}}},
		&sluicev1.DeleteRecordsRequest{Topic: fuzzTarget, BeforeOffsets: map[int32]int64{0: 1}},
		&sluicev1.AddPartitionsRequest{Name: fuzzTarget, TotalPartitions: 3},
		&sluicev1.DescribeTopicRequest{Name: fuzzTarget},
		&sluicev1.GetMetadataRequest{},
		&sluicev1.InitProducerRequest{},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(i), false, b)
		f.Add(byte(i), true, b)
	}
}

// FuzzHandlers feeds random and mutated requests to every unary handler
// of a live node: no call may fail with INTERNAL or UNKNOWN (a panic or an
// unmapped error), and every batch the node accepted must read back whole.
func FuzzHandlers(f *testing.F) {
	fuzzSeeds(f)
	n := servertest.Start(f, servertest.Config(f.TempDir()))
	ctx := context.Background()
	if _, err := n.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: fuzzTarget, Partitions: 2}); err != nil {
		f.Fatal(err)
	}
	checked := map[int32]int64{}
	f.Fuzz(func(t *testing.T, kind byte, steer bool, data []byte) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var err error
		switch kind % 11 {
		case 0, 1:
			req := &sluicev1.ProduceRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			if steer {
				req.Topic = fuzzTarget
			}
			req.TimeoutMs = min(max(req.TimeoutMs, 0), 5000)
			_, err = n.Producer.Produce(ctx, req)
		case 2:
			req := &sluicev1.FetchRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			if steer {
				req.Topic = fuzzTarget
			}
			req.MaxWaitMs = min(req.MaxWaitMs, 5)
			_, err = n.Consumer.Fetch(ctx, req)
		case 3:
			req := &sluicev1.CreateTopicRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			req.Partitions = min(req.Partitions, 3)
			if req.Name == fuzzTarget {
				return
			}
			_, err = n.Admin.CreateTopic(ctx, req)
		case 4:
			req := &sluicev1.AlterTopicConfigRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			if steer {
				req.Name = fuzzTarget
				req.ValidateOnly = true // keep the target writable
			}
			_, err = n.Admin.AlterTopicConfig(ctx, req)
		case 5:
			req := &sluicev1.ListOffsetsRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			if steer {
				req.Topic = fuzzTarget
			}
			_, err = n.Admin.ListOffsets(ctx, req)
		case 6:
			req := &sluicev1.DeleteRecordsRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			if steer {
				req.Topic = fuzzTarget
			}
			_, err = n.Admin.DeleteRecords(ctx, req)
		case 7:
			req := &sluicev1.AddPartitionsRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			req.TotalPartitions = min(req.TotalPartitions, 4)
			_, err = n.Admin.AddPartitions(ctx, req)
		case 8:
			req := &sluicev1.DescribeTopicRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			_, err = n.Admin.DescribeTopic(ctx, req)
		case 9:
			req := &sluicev1.GetMetadataRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			_, err = n.Cluster.GetMetadata(ctx, req)
		case 10:
			req := &sluicev1.InitProducerRequest{}
			if proto.Unmarshal(data, req) != nil {
				return
			}
			_, err = n.Producer.InitProducer(ctx, req)
		}
		if c := status.Code(err); c == codes.Internal || c == codes.Unknown {
			t.Fatalf("kind %d: %v", kind%11, err)
		}
		verifyStored(t, n, checked)
	})
}

// verifyStored reads what was appended to the fuzz target since the last
// check and decodes every record of it.
func verifyStored(t *testing.T, n *servertest.Node, checked map[int32]int64) {
	d, err := n.Admin.DescribeTopic(context.Background(), &sluicev1.DescribeTopicRequest{Name: fuzzTarget})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.GetTopic().GetPartitions() {
		idx := p.GetPartition()
		from := max(checked[idx], p.GetLogStartOffset())
		for _, format := range []sluicev1.RecordFormat{sluicev1.RecordFormat_RECORD_FORMAT_STORED, sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED} {
			resp, err := n.Consumer.Fetch(context.Background(), &sluicev1.FetchRequest{Topic: fuzzTarget, RecordFormat: format,
				Partitions: []*sluicev1.FetchPosition{{Partition: idx, Offset: from}}, MaxBytes: 64 << 20, PartitionMaxBytes: 64 << 20})
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			fp := resp.GetPartitions()[0]
			if fp.GetError() != nil {
				t.Fatalf("fetch partition %d at %d: %v", idx, from, fp.GetError())
			}
			next := from
			for _, b := range fp.GetBatches() {
				recs, err := batch.Records(b)
				if err != nil {
					t.Fatalf("stored batch at %d does not decode: %v", b.GetBaseOffset(), err)
				}
				if len(recs) != int(b.GetRecordCount()) || len(recs) == 0 {
					t.Fatalf("batch at %d: %d records, count %d", b.GetBaseOffset(), len(recs), b.GetRecordCount())
				}
				next = b.GetBaseOffset() + int64(len(recs))
			}
			if format == sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED {
				checked[idx] = next
			}
		}
	}
}

// FuzzConsume sends a random sequence of Consume requests followed by a
// commit (a barrier the server answers in order): the stream must not
// fail with INTERNAL or UNKNOWN, and the batches pushed before the barrier
// must fit in the credit granted.
func FuzzConsume(f *testing.F) {
	seq := func(reqs ...*sluicev1.ConsumeRequest) []byte {
		var out []byte
		for _, r := range reqs {
			b, err := proto.Marshal(r)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, byte(len(b)))
			out = append(out, b...)
		}
		return out
	}
	sub := func(pos *sluicev1.StartPosition) *sluicev1.ConsumeRequest {
		return &sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{Topic: fuzzTarget, Start: pos}}}
	}
	credit := func(n int64) *sluicev1.ConsumeRequest {
		return &sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Credit{Credit: &sluicev1.Credit{Bytes: n}}}
	}
	seek := &sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Seek{Seek: &sluicev1.Seek{Topic: fuzzTarget, Partition: 1,
		Position: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Offset{Offset: 3}}}}}
	f.Add(seq(sub(nil), credit(100)))
	f.Add(seq(sub(&sluicev1.StartPosition{Position: &sluicev1.StartPosition_TimestampMs{TimestampMs: 1}}), credit(1000), seek, credit(50)))
	f.Add(seq(credit(1<<40), sub(&sluicev1.StartPosition{Position: &sluicev1.StartPosition_Latest{Latest: true}})))

	n := servertest.Start(f, servertest.Config(f.TempDir()))
	ctx := context.Background()
	if _, err := n.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: fuzzTarget, Partitions: 2}); err != nil {
		f.Fatal(err)
	}
	for i := range 6 {
		if _, err := n.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: fuzzTarget, Partition: proto.Int32(int32(i % 2)),
			Batch: &sluicev1.RecordBatch{Records: records(i+1, "c")}}); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		s, err := n.Consumer.Consume(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Read concurrently: a client that only sends would stall the
		// server's pushes (flow control) and with them its reads.
		var granted atomic.Int64
		recvDone := make(chan error, 1)
		go func() {
			used := int64(0)
			for {
				m, err := s.Recv()
				if err != nil {
					if c := status.Code(err); c == codes.Internal || c == codes.Unknown {
						recvDone <- err
						return
					}
					recvDone <- nil
					return
				}
				if b := m.GetBatch(); b != nil {
					used += int64(proto.Size(b.GetBatch()))
					if g := granted.Load(); used > g {
						recvDone <- fmt.Errorf("pushed %d bytes with %d credit", used, g)
						return
					}
					if _, err := batch.Records(b.GetBatch()); err != nil {
						recvDone <- fmt.Errorf("pushed batch does not decode: %w", err)
						return
					}
				}
				if m.GetCommitResult() != nil {
					recvDone <- nil
					return
				}
			}
		}()
		for len(data) > 0 {
			l := int(data[0])
			data = data[1:]
			if l > len(data) {
				break
			}
			req := &sluicev1.ConsumeRequest{}
			if proto.Unmarshal(data[:l], req) != nil {
				data = data[l:]
				continue
			}
			data = data[l:]
			if c := req.GetCredit(); c != nil && c.GetBytes() > 0 {
				granted.Add(c.GetBytes()) // before sending: the server may push at once
			}
			if err := s.Send(req); err != nil {
				break // the server ended the stream; Recv says why
			}
		}
		_ = s.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Commit{Commit: &sluicev1.StreamCommit{}}})
		if err := <-recvDone; err != nil {
			t.Fatal(err)
		}
		cancel()
	})
}
