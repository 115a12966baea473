package server

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// validateRequest checks the shape of a request before a handler runs:
// required fields, ranges, enum values. What needs the cluster state
// (does the topic exist, is the config valid) is checked by the handler.
// The error names the field (INVALID_ARGUMENT, reason INVALID_REQUEST).
func validateRequest(req any) error {
	switch r := req.(type) {
	case *sluicev1.ProduceRequest:
		return validateProduce(r)
	case *sluicev1.ProduceStreamRequest:
		return nil // answered in-stream by the handler, which validates r.Request
	case *sluicev1.InitProducerRequest:
		return nonNegative("transaction_timeout_ms", int64(r.GetTransactionTimeoutMs()))
	case *sluicev1.FetchRequest:
		return validateFetch(r)
	case *sluicev1.ConsumeRequest:
		return validateConsume(r)
	case *sluicev1.CreateTopicRequest:
		return first(required("name", r.GetName()), nonNegative("partitions", int64(r.GetPartitions())),
			nonNegative("replication_factor", int64(r.GetReplicationFactor())))
	case *sluicev1.DeleteTopicRequest:
		return required("name", r.GetName())
	case *sluicev1.DescribeTopicRequest:
		return required("name", r.GetName())
	case *sluicev1.AddPartitionsRequest:
		if err := required("name", r.GetName()); err != nil {
			return err
		}
		if r.GetTotalPartitions() <= 0 {
			return invalidField("total_partitions", "must be positive")
		}
	case *sluicev1.AlterTopicConfigRequest:
		if err := required("name", r.GetName()); err != nil {
			return err
		}
		for i, k := range r.GetReset_() {
			if k == "" {
				return invalidField(fmt.Sprintf("reset[%d]", i), "empty key")
			}
			if _, set := r.GetSet()[k]; set {
				return invalidField(fmt.Sprintf("reset[%d]", i), "key %q is also in set", k)
			}
		}
	case *sluicev1.ListOffsetsRequest:
		if err := required("topic", r.GetTopic()); err != nil {
			return err
		}
		for i, p := range r.GetPartitions() {
			if err := nonNegative(fmt.Sprintf("partitions[%d]", i), int64(p)); err != nil {
				return err
			}
		}
		if r.GetSpec() != nil && r.GetSpec().GetSpec() == nil {
			return invalidField("spec", "one of earliest, latest or timestamp_ms must be set")
		}
		if ts, ok := r.GetSpec().GetSpec().(*sluicev1.OffsetSpec_TimestampMs); ok && ts.TimestampMs < 0 {
			return invalidField("spec.timestamp_ms", "must not be negative")
		}
	case *sluicev1.DeleteRecordsRequest:
		if err := required("topic", r.GetTopic()); err != nil {
			return err
		}
		if len(r.GetBeforeOffsets()) == 0 {
			return invalidField("before_offsets", "at least one partition is required")
		}
		for p, off := range r.GetBeforeOffsets() {
			if p < 0 {
				return invalidField("before_offsets", "partition %d is negative", p)
			}
			if off < -1 {
				return invalidField("before_offsets", "offset %d for partition %d (use -1 for the high watermark)", off, p)
			}
		}
	case *sluicev1.ReassignPartitionRequest:
		return required("topic", r.GetTopic())
	}
	return nil
}

func validateProduce(r *sluicev1.ProduceRequest) error {
	if err := required("topic", r.GetTopic()); err != nil {
		return err
	}
	if r.Partition != nil && r.GetPartition() < 0 {
		return invalidField("partition", "must not be negative")
	}
	if err := enum("acks", r.GetAcks()); err != nil {
		return err
	}
	if r.GetBatch() == nil {
		return invalidField("batch", "required")
	}
	if len(r.GetBatch().GetRecords()) == 0 && len(r.GetBatch().GetRecordsData()) == 0 {
		return invalidField("batch", "records or records_data must hold at least one record")
	}
	return nonNegative("timeout_ms", int64(r.GetTimeoutMs()))
}

func validateFetch(r *sluicev1.FetchRequest) error {
	if err := required("topic", r.GetTopic()); err != nil {
		return err
	}
	if len(r.GetPartitions()) == 0 {
		return invalidField("partitions", "at least one partition is required")
	}
	if len(r.GetPartitions()) > cluster.MaxPartitions {
		return invalidField("partitions", "at most %d", cluster.MaxPartitions)
	}
	for i, p := range r.GetPartitions() {
		if p == nil {
			return invalidField(fmt.Sprintf("partitions[%d]", i), "missing")
		}
		if err := first(nonNegative(fmt.Sprintf("partitions[%d].partition", i), int64(p.GetPartition())),
			nonNegative(fmt.Sprintf("partitions[%d].offset", i), p.GetOffset())); err != nil {
			return err
		}
	}
	return first(
		nonNegative("max_bytes", int64(r.GetMaxBytes())),
		nonNegative("partition_max_bytes", int64(r.GetPartitionMaxBytes())),
		nonNegative("min_bytes", int64(r.GetMinBytes())),
		nonNegative("max_wait_ms", int64(r.GetMaxWaitMs())),
		enum("isolation_level", r.GetIsolationLevel()),
		enum("record_format", r.GetRecordFormat()),
	)
}

func validateConsume(r *sluicev1.ConsumeRequest) error {
	switch v := r.GetRequest().(type) {
	case *sluicev1.ConsumeRequest_Subscribe:
		s := v.Subscribe
		if err := required("subscribe.topic", s.GetTopic()); err != nil {
			return err
		}
		for i, p := range s.GetPartitions() {
			if err := nonNegative(fmt.Sprintf("subscribe.partitions[%d]", i), int64(p)); err != nil {
				return err
			}
		}
		return first(startPosition("subscribe.start", s.GetStart(), true),
			enum("subscribe.isolation_level", s.GetIsolationLevel()), enum("subscribe.record_format", s.GetRecordFormat()))
	case *sluicev1.ConsumeRequest_Unsubscribe:
		return required("unsubscribe.topic", v.Unsubscribe.GetTopic())
	case *sluicev1.ConsumeRequest_Seek:
		return first(required("seek.topic", v.Seek.GetTopic()), nonNegative("seek.partition", int64(v.Seek.GetPartition())),
			startPosition("seek.position", v.Seek.GetPosition(), false))
	case *sluicev1.ConsumeRequest_Credit:
		return nonNegative("credit.bytes", v.Credit.GetBytes())
	case *sluicev1.ConsumeRequest_Group, *sluicev1.ConsumeRequest_Commit:
		return nil // answered UNSUPPORTED by the handler
	default:
		return invalidField("request", "one of subscribe, unsubscribe, seek, credit, group or commit is required")
	}
}

func startPosition(field string, p *sluicev1.StartPosition, optional bool) error {
	if p == nil || p.GetPosition() == nil {
		if optional && p == nil {
			return nil
		}
		return invalidField(field, "one of earliest, latest, offset or timestamp_ms must be set")
	}
	switch v := p.GetPosition().(type) {
	case *sluicev1.StartPosition_Offset:
		return nonNegative(field+".offset", v.Offset)
	case *sluicev1.StartPosition_TimestampMs:
		return nonNegative(field+".timestamp_ms", v.TimestampMs)
	}
	return nil
}

func required(field, v string) error {
	if v == "" {
		return invalidField(field, "required")
	}
	if len(v) > 249 {
		return invalidField(field, "longer than 249 characters")
	}
	return nil
}

func nonNegative(field string, v int64) error {
	if v < 0 {
		return invalidField(field, "must not be negative")
	}
	return nil
}

// enum rejects a number that is not a value of the enum.
func enum[E interface {
	protoreflect.Enum
	~int32
}](field string, v E) error {
	if v.Descriptor().Values().ByNumber(protoreflect.EnumNumber(v)) == nil {
		return invalidField(field, "unknown value %d", int32(v))
	}
	return nil
}

// first returns the first non-nil error.
func first(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
