package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

type badCase struct {
	name   string
	call   func(ctx context.Context, n *servertest.Node) error
	code   codes.Code
	reason string
	md     map[string]string
}

func call[Req, Resp any](f func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) func(context.Context, *servertest.Node) error {
	return func(ctx context.Context, _ *servertest.Node) error {
		_, err := f(ctx, req)
		return err
	}
}

func TestBadInputs(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "t", 2, map[string]string{"max.message.bytes": "2000"})
	plain := &sluicev1.RecordBatch{Records: records(1, "x")}
	encoded, err := batch.Encode(records(3, "y"), sluicev1.Compression_COMPRESSION_ZSTD)
	if err != nil {
		t.Fatal(err)
	}
	badCRC := proto.Clone(encoded).(*sluicev1.RecordBatch)
	badCRC.Crc++
	truncated := proto.Clone(encoded).(*sluicev1.RecordBatch)
	truncated.RecordsData = truncated.RecordsData[:len(truncated.RecordsData)/2]
	truncated.Crc = batch.CRC(truncated.RecordsData)
	wrongCount := proto.Clone(encoded).(*sluicev1.RecordBatch)
	wrongCount.RecordCount = 4
	big := &sluicev1.RecordBatch{Records: []*sluicev1.Record{{Value: []byte(strings.Repeat("z", 3000))}}}
	withOffset := &sluicev1.RecordBatch{BaseOffset: 7, Records: records(1, "x")}
	control := &sluicev1.RecordBatch{Control: true, Records: records(1, "x")}
	inv := codes.InvalidArgument
	const ir = "INVALID_REQUEST"
	f := func(k string) map[string]string { return map[string]string{"field": k} }
	p, a, c, cl := n.Producer, n.Admin, n.Consumer, n.Cluster
	cases := []badCase{
		{"produce no topic", call(p.Produce, &sluicev1.ProduceRequest{Batch: plain}), inv, ir, f("topic")},
		{"produce no batch", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t"}), inv, ir, f("batch")},
		{"produce empty batch", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Batch: &sluicev1.RecordBatch{}}), inv, ir, f("batch")},
		{"produce negative partition", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Partition: proto.Int32(-1), Batch: plain}), inv, ir, f("partition")},
		{"produce unknown partition", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Partition: proto.Int32(2), Batch: plain}), codes.NotFound, "UNKNOWN_PARTITION", map[string]string{"topic": "t", "partition": "2"}},
		{"produce bad acks", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Acks: 9, Batch: plain}), inv, ir, f("acks")},
		{"produce negative timeout", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", TimeoutMs: -1, Batch: plain}), inv, ir, f("timeout_ms")},
		{"produce unknown topic", call(p.Produce, &sluicev1.ProduceRequest{Topic: "u", Batch: plain}), codes.NotFound, "UNKNOWN_TOPIC", map[string]string{"topic": "u"}},
		{"produce bad crc", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Batch: badCRC}), inv, "CORRUPT_BATCH", nil},
		{"produce truncated", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Batch: truncated}), inv, "CORRUPT_BATCH", nil},
		{"produce wrong count", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Batch: wrongCount}), inv, "CORRUPT_BATCH", nil},
		{"produce too large", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Partition: proto.Int32(0), Batch: big}), inv, "BATCH_TOO_LARGE", map[string]string{"max": "2000"}},
		{"produce base offset", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Batch: withOffset}), inv, ir, f("batch.base_offset")},
		{"produce control", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", Batch: control}), inv, ir, f("batch.control")},
		{"produce transactional", call(p.Produce, &sluicev1.ProduceRequest{Topic: "t", TransactionalId: "x", Batch: plain}), codes.Unimplemented, "UNSUPPORTED", nil},
		{"init transactional", call(p.InitProducer, &sluicev1.InitProducerRequest{TransactionalId: "x"}), codes.Unimplemented, "UNSUPPORTED", nil},
		{"init negative timeout", call(p.InitProducer, &sluicev1.InitProducerRequest{TransactionTimeoutMs: -5}), inv, ir, f("transaction_timeout_ms")},
		{"fetch no topic", call(c.Fetch, &sluicev1.FetchRequest{Partitions: []*sluicev1.FetchPosition{{}}}), inv, ir, f("topic")},
		{"fetch no partitions", call(c.Fetch, &sluicev1.FetchRequest{Topic: "t"}), inv, ir, f("partitions")},
		{"fetch negative offset", call(c.Fetch, &sluicev1.FetchRequest{Topic: "t", Partitions: []*sluicev1.FetchPosition{{Offset: -1}}}), inv, ir, f("partitions[0].offset")},
		{"fetch negative wait", call(c.Fetch, &sluicev1.FetchRequest{Topic: "t", MaxWaitMs: -1, Partitions: []*sluicev1.FetchPosition{{}}}), inv, ir, f("max_wait_ms")},
		{"fetch bad format", call(c.Fetch, &sluicev1.FetchRequest{Topic: "t", RecordFormat: 7, Partitions: []*sluicev1.FetchPosition{{}}}), inv, ir, f("record_format")},
		{"fetch unknown topic", call(c.Fetch, &sluicev1.FetchRequest{Topic: "u", Partitions: []*sluicev1.FetchPosition{{}}}), codes.NotFound, "UNKNOWN_TOPIC", nil},
		{"create no name", call(a.CreateTopic, &sluicev1.CreateTopicRequest{}), inv, ir, f("name")},
		{"create bad name", call(a.CreateTopic, &sluicev1.CreateTopicRequest{Name: "a b"}), inv, ir, f("name")},
		{"create reserved name", call(a.CreateTopic, &sluicev1.CreateTopicRequest{Name: "__x"}), inv, ir, f("name")},
		{"create negative partitions", call(a.CreateTopic, &sluicev1.CreateTopicRequest{Name: "n", Partitions: -3}), inv, ir, f("partitions")},
		{"create too many replicas", call(a.CreateTopic, &sluicev1.CreateTopicRequest{Name: "n", ReplicationFactor: 3}), inv, ir, f("replication_factor")},
		{"create unknown config", call(a.CreateTopic, &sluicev1.CreateTopicRequest{Name: "n", Configs: map[string]string{"colour": "red"}}), inv, "INVALID_CONFIG", map[string]string{"config": "colour"}},
		{"create bad retention", call(a.CreateTopic, &sluicev1.CreateTopicRequest{Name: "n", Configs: map[string]string{"retention.ms": "-7"}}), inv, "INVALID_CONFIG", map[string]string{"config": "retention.ms"}},
		{"create exists", call(a.CreateTopic, &sluicev1.CreateTopicRequest{Name: "t"}), codes.AlreadyExists, "TOPIC_EXISTS", map[string]string{"topic": "t"}},
		{"delete no name", call(a.DeleteTopic, &sluicev1.DeleteTopicRequest{}), inv, ir, f("name")},
		{"delete unknown", call(a.DeleteTopic, &sluicev1.DeleteTopicRequest{Name: "u"}), codes.NotFound, "UNKNOWN_TOPIC", nil},
		{"describe no name", call(a.DescribeTopic, &sluicev1.DescribeTopicRequest{}), inv, ir, f("name")},
		{"describe unknown", call(a.DescribeTopic, &sluicev1.DescribeTopicRequest{Name: "u"}), codes.NotFound, "UNKNOWN_TOPIC", nil},
		{"add partitions zero", call(a.AddPartitions, &sluicev1.AddPartitionsRequest{Name: "t"}), inv, ir, f("total_partitions")},
		{"add partitions fewer", call(a.AddPartitions, &sluicev1.AddPartitionsRequest{Name: "t", TotalPartitions: 1}), inv, ir, f("total_partitions")},
		{"add partitions unknown", call(a.AddPartitions, &sluicev1.AddPartitionsRequest{Name: "u", TotalPartitions: 5}), codes.NotFound, "UNKNOWN_TOPIC", nil},
		{"alter no name", call(a.AlterTopicConfig, &sluicev1.AlterTopicConfigRequest{}), inv, ir, f("name")},
		{"alter bad value", call(a.AlterTopicConfig, &sluicev1.AlterTopicConfigRequest{Name: "t", Set: map[string]string{"message.timestamp.type": "Later"}}), inv, "INVALID_CONFIG", nil},
		{"alter unknown reset", call(a.AlterTopicConfig, &sluicev1.AlterTopicConfigRequest{Name: "t", Reset_: []string{"nope"}}), inv, "INVALID_CONFIG", nil},
		{"alter set and reset", call(a.AlterTopicConfig, &sluicev1.AlterTopicConfigRequest{Name: "t", Set: map[string]string{"retention.ms": "1"}, Reset_: []string{"retention.ms"}}), inv, ir, f("reset[0]")},
		{"list offsets no topic", call(a.ListOffsets, &sluicev1.ListOffsetsRequest{}), inv, ir, f("topic")},
		{"list offsets empty spec", call(a.ListOffsets, &sluicev1.ListOffsetsRequest{Topic: "t", Spec: &sluicev1.OffsetSpec{}}), inv, ir, f("spec")},
		{"list offsets unknown", call(a.ListOffsets, &sluicev1.ListOffsetsRequest{Topic: "u"}), codes.NotFound, "UNKNOWN_TOPIC", nil},
		{"delete records none", call(a.DeleteRecords, &sluicev1.DeleteRecordsRequest{Topic: "t"}), inv, ir, f("before_offsets")},
		{"delete records bad offset", call(a.DeleteRecords, &sluicev1.DeleteRecordsRequest{Topic: "t", BeforeOffsets: map[int32]int64{0: -2}}), inv, ir, f("before_offsets")},
		{"delete records unknown", call(a.DeleteRecords, &sluicev1.DeleteRecordsRequest{Topic: "u", BeforeOffsets: map[int32]int64{0: 1}}), codes.NotFound, "UNKNOWN_TOPIC", nil},
		{"decommission", call(cl.DecommissionNode, &sluicev1.DecommissionNodeRequest{NodeId: 0}), codes.InvalidArgument, "INVALID_REQUEST", nil},
		{"reassign", call(cl.ReassignPartition, &sluicev1.ReassignPartitionRequest{Topic: "t"}), codes.InvalidArgument, "INVALID_REQUEST", nil},
		{"group commit", call(n.Group.CommitOffsets, &sluicev1.CommitOffsetsRequest{}), inv, ir, f("group_id")},
		{"group fetch", call(n.Group.FetchOffsets, &sluicev1.FetchOffsetsRequest{}), inv, ir, f("group_id")},
		{"group describe", call(n.Group.DescribeGroup, &sluicev1.DescribeGroupRequest{}), inv, ir, f("group_id")},
		{"group describe unknown", call(n.Group.DescribeGroup, &sluicev1.DescribeGroupRequest{GroupId: "nope"}), codes.NotFound, "UNKNOWN_GROUP", nil},
		{"group reset", call(n.Group.ResetOffsets, &sluicev1.ResetOffsetsRequest{}), inv, ir, f("group_id")},
		{"group reset no target", call(n.Group.ResetOffsets, &sluicev1.ResetOffsetsRequest{GroupId: "g", Partitions: []*sluicev1.TopicPartitions{{Topic: "t"}}}), inv, ir, f("target")},
		{"group delete", call(n.Group.DeleteGroup, &sluicev1.DeleteGroupRequest{}), inv, ir, f("group_id")},
		{"group commit unknown member", call(n.Group.CommitOffsets, &sluicev1.CommitOffsetsRequest{GroupId: "g", MemberId: "m", Offsets: []*sluicev1.OffsetCommit{{Topic: "t"}}}), codes.NotFound, "UNKNOWN_MEMBER", nil},
		{"txn add", call(n.Txn.AddPartitionsToTransaction, &sluicev1.AddPartitionsToTransactionRequest{}), codes.Unimplemented, "UNSUPPORTED", nil},
		{"txn offsets", call(n.Txn.CommitTransactionalOffsets, &sluicev1.CommitTransactionalOffsetsRequest{}), codes.Unimplemented, "UNSUPPORTED", nil},
		{"txn end", call(n.Txn.EndTransaction, &sluicev1.EndTransactionRequest{}), codes.Unimplemented, "UNSUPPORTED", nil},
		{"txn list", call(n.Txn.ListTransactions, &sluicev1.ListTransactionsRequest{}), codes.Unimplemented, "UNSUPPORTED", nil},
		{"group membership without join", func(ctx context.Context, n *servertest.Node) error {
			s, err := n.Group.Membership(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&sluicev1.MembershipRequest{}); err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, inv, ir, f("join")},
		{"consume empty request", consumeCall(&sluicev1.ConsumeRequest{}), inv, ir, f("request")},
		{"consume subscribe no topic", consumeCall(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{}}}), inv, ir, f("subscribe.topic")},
		{"consume subscribe unknown", consumeCall(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{Topic: "u"}}}), codes.NotFound, "UNKNOWN_TOPIC", nil},
		{"consume negative credit", consumeCall(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Credit{Credit: &sluicev1.Credit{Bytes: -1}}}), inv, ir, f("credit.bytes")},
		{"consume seek no position", consumeCall(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Seek{Seek: &sluicev1.Seek{Topic: "t"}}}), inv, ir, f("seek.position")},
		{"consume group without topics", consumeCall(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Group{Group: &sluicev1.GroupSubscription{GroupId: "g"}}}), inv, ir, nil},
		{"consume group without id", consumeCall(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Group{Group: &sluicev1.GroupSubscription{Topics: []string{"t"}}}}), inv, ir, f("group.group_id")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctxT(t), n)
			ei := wantError(t, err, tc.code, tc.reason)
			for k, v := range tc.md {
				if ei.GetMetadata()[k] != v {
					t.Fatalf("metadata %q = %q, want %q (%v)", k, ei.GetMetadata()[k], v, ei.GetMetadata())
				}
			}
		})
	}
	// Nothing bad was stored: the topic is still empty and readable.
	for p := range int32(2) {
		if bs := fetchAll(t, n, "t", p, 0, 0); len(bs) != 0 {
			t.Fatalf("partition %d holds %d batches after bad produces", p, len(bs))
		}
	}
}

// consumeCall opens a Consume stream, sends req and returns the error the
// stream ends with.
func consumeCall(req *sluicev1.ConsumeRequest) func(context.Context, *servertest.Node) error {
	return func(ctx context.Context, n *servertest.Node) error {
		s, err := n.Consumer.Consume(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(req); err != nil {
			return err
		}
		for {
			if _, err := s.Recv(); err != nil {
				return err
			}
		}
	}
}
