package server

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication"
	"github.com/sluicehq/sluice/storage"
)

// toAPIError maps an error of the core to what the API reports. Errors
// that have no API meaning are logged and reported as INTERNAL.
func (s *Server) toAPIError(ctx context.Context, err error) *apiError {
	if err == nil {
		return nil
	}
	var (
		ae   *apiError
		ut   *cluster.UnknownTopicError
		up   *cluster.UnknownPartitionError
		te   *cluster.TopicExistsError
		ce   *cluster.ConfigError
		ie   *cluster.InvalidError
		nc   *cluster.NotControllerError
		nr   *cluster.NotReplicaError
		bi   *batch.InvalidError
		tl   *batch.TooLargeError
		oor  *storage.OffsetOutOfRangeError
		nl   *replication.NotLeaderError
		re   *remoteError
		mdOf = func(kv ...string) map[string]string {
			m := make(map[string]string, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
	)
	switch {
	case errors.Is(err, errCorruptStored):
		s.logger.LogAttrs(ctx, slog.LevelError, "serving a stored batch failed", slog.Any("err", err))
		return internalError()
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &re):
		return apiErrorOf(re.st)
	case errors.As(err, &ut):
		return newAPIError(codes.NotFound, sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC, mdOf("topic", ut.Topic),
			"topic %q does not exist", ut.Topic)
	case errors.As(err, &up):
		return newAPIError(codes.NotFound, sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION,
			mdOf("topic", up.Topic, "partition", itoa(up.Partition)), "topic %q has no partition %d", up.Topic, up.Partition)
	case errors.As(err, &te):
		return newAPIError(codes.AlreadyExists, sluicev1.ErrorReason_ERROR_REASON_TOPIC_EXISTS, mdOf("topic", te.Topic),
			"topic %q already exists", te.Topic)
	case errors.As(err, &ce):
		return newAPIError(codes.InvalidArgument, sluicev1.ErrorReason_ERROR_REASON_INVALID_CONFIG, mdOf("config", ce.Key),
			"%s", trimPrefix(ce.Error()))
	case errors.As(err, &ie):
		return invalidField(ie.Field, "%s", ie.Reason)
	case errors.As(err, &nc):
		md := mdOf()
		if nc.Leader != 0 {
			md["leader"] = itoa(nc.Leader)
			if addr := s.nodeAddr(nc.Leader); addr != "" {
				md["leader_address"] = addr
			}
		}
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NOT_LEADER, md,
			"this node is not the controller")
	case errors.As(err, &nr):
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NOT_LEADER,
			mdOf("topic", nr.Topic, "partition", itoa(nr.Partition)), "this node holds no replica of %s/%d", nr.Topic, nr.Partition)
	case errors.Is(err, cluster.ErrNotOpen):
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_LEADER_NOT_AVAILABLE, nil,
			"the partition is being opened; retry shortly")
	case errors.As(err, &tl):
		return newAPIError(codes.InvalidArgument, sluicev1.ErrorReason_ERROR_REASON_BATCH_TOO_LARGE,
			mdOf("size", itoa(tl.Size), "max", itoa(tl.Max)), "%s", trimPrefix(tl.Error()))
	case errors.As(err, &bi):
		return invalidField("batch."+bi.Field, "%s", bi.Msg)
	case errors.Is(err, batch.ErrCorrupt):
		return newAPIError(codes.InvalidArgument, sluicev1.ErrorReason_ERROR_REASON_CORRUPT_BATCH, nil, "%s", trimPrefix(err.Error()))
	case errors.Is(err, batch.ErrInvalid), errors.Is(err, replication.ErrInvalidBatch):
		return invalidField("batch", "%s", trimPrefix(err.Error()))
	case errors.As(err, &oor):
		return newAPIError(codes.OutOfRange, sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE,
			mdOf("earliest", itoa(oor.Start), "latest", itoa(oor.End)),
			"offset %d is out of range [%d, %d]", oor.Offset, oor.Start, oor.End)
	case errors.As(err, &nl):
		md := mdOf()
		if nl.Leader == 0 {
			return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_LEADER_NOT_AVAILABLE, nil,
				"the partition has no leader right now")
		}
		md["leader"] = itoa(nl.Leader)
		if addr := s.nodeAddr(nl.Leader); addr != "" {
			md["leader_address"] = addr
		}
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NOT_LEADER, md,
			"node %d leads the partition", nl.Leader)
	case errors.Is(err, replication.ErrUnknownOutcome):
		code := codes.Unavailable
		if errors.Is(err, context.DeadlineExceeded) {
			code = codes.DeadlineExceeded
		}
		return newAPIError(code, sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_OUTCOME, nil,
			"the batch was proposed but its outcome is unknown")
	case errors.Is(err, replication.ErrOutOfOrderSequence):
		return newAPIError(codes.FailedPrecondition, sluicev1.ErrorReason_ERROR_REASON_OUT_OF_ORDER_SEQUENCE, nil,
			"the batch's sequence number does not follow the producer's last one")
	case errors.Is(err, replication.ErrProducerFenced):
		return newAPIError(codes.FailedPrecondition, sluicev1.ErrorReason_ERROR_REASON_PRODUCER_FENCED, nil,
			"a newer epoch of this producer id exists")
	case errors.Is(err, cluster.ErrMetadataFailed):
		s.logger.LogAttrs(ctx, slog.LevelError, "metadata change refused", slog.Any("err", err))
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, nil,
			"this node cannot apply the cluster metadata; see its log")
	case errors.Is(err, replication.ErrClosed), errors.Is(err, cluster.ErrClosed), errors.Is(err, replication.ErrLogFailed):
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, nil,
			"the node is shutting down or its storage failed")
	case errors.Is(err, context.DeadlineExceeded):
		// Nothing was proposed (a proposed batch reports ErrUnknownOutcome).
		return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NOT_WRITTEN, nil,
			"timed out before the request was carried out; nothing was written")
	case errors.Is(err, context.Canceled):
		return newAPIError(codes.Canceled, sluicev1.ErrorReason_ERROR_REASON_NOT_WRITTEN, nil, "canceled")
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return &apiError{code: st.Code(), reason: sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED, msg: st.Message()}
	}
	s.logger.LogAttrs(ctx, slog.LevelError, "request failed", slog.Any("err", err))
	return internalError()
}

// callError is toAPIError for a call's return value (nil stays nil).
func (s *Server) callError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	return s.toAPIError(ctx, err)
}

// trimPrefix drops a Go package prefix ("batch: ") from a message.
func trimPrefix(msg string) string {
	for i := 0; i < len(msg) && i < 16; i++ {
		if msg[i] == ':' && i+1 < len(msg) && msg[i+1] == ' ' {
			return msg[i+2:]
		}
		if msg[i] == ' ' {
			break
		}
	}
	return msg
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// outOfRange is the error for an offset outside [start, hw].
func outOfRange(offset int64, start, hw uint64) error {
	return newAPIError(codes.OutOfRange, sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE,
		map[string]string{"earliest": itoa(start), "latest": itoa(hw)},
		"offset %d is out of range [%d, %d]", offset, start, hw)
}

// readError explains a failed read or write of a partition of topic: a replica
// closed because its topic was deleted (or re-created) reports the topic
// as unknown rather than the node as unavailable.
func (s *Server) readError(topic, topicID string, err error) error {
	if !errors.Is(err, replication.ErrClosed) {
		return err
	}
	c := s.opened.Load()
	if c == nil {
		return err
	}
	if t, ok := c.md.State().Topic(topic); !ok || t.ID != topicID {
		return &cluster.UnknownTopicError{Topic: topic}
	}
	return err
}

// nodeAddr is a node's client API address ("" when unknown).
func (s *Server) nodeAddr(id uint64) string {
	c := s.opened.Load()
	if c == nil {
		return ""
	}
	if n, ok := c.md.State().Nodes[id]; ok {
		return n.Addr
	}
	return ""
}
