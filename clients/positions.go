package clients

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// recover decides what a partition error means for the position: leader changes are
// retried after a metadata refresh, an offset out of range moves to the nearest end of
// the log (unless StrictOffsets).
func (c *Consumer) recover(ctx context.Context, tp topicPartition, pos int64, err error, fp *sluicev1.FetchedPartition) (int64, bool) {
	switch {
	case readRetriable(err):
		c.cl.refresh(ctx, tp.topic) //nolint:errcheck // best effort; the next Poll retries
		return pos, true
	case errors.Is(err, ErrOffsetOutOfRange) && !c.cfg.strictOffsets:
		e, _ := AsError(err)
		earliest, err1 := strconv.ParseInt(e.Metadata["earliest"], 10, 64)
		latest, err2 := strconv.ParseInt(e.Metadata["latest"], 10, 64)
		if err1 != nil || err2 != nil {
			earliest, latest = fp.GetLogStartOffset(), fp.GetHighWatermark()
		}
		if pos < earliest {
			return earliest, true
		}
		if latest >= earliest {
			return latest, true
		}
	}
	return 0, false
}

// resolve turns start positions into offsets with ListOffsets.
func (c *Consumer) resolve(ctx context.Context, parts []*cpart) []error {
	type key struct {
		topic string
		kind  offsetKind
		ts    int64
	}
	groups := make(map[key][]*cpart)
	for _, cp := range parts {
		k := key{cp.tp.topic, cp.start.kind, 0}
		if cp.start.kind == offsetTime {
			k.ts = cp.start.ts.UnixMilli()
		}
		groups[k] = append(groups[k], cp)
	}
	var errs []error
	refresh := map[string]bool{} // topics whose leaders could not be reached
	for k, cps := range groups {
		ps := make([]int32, len(cps))
		for i, cp := range cps {
			ps[i] = cp.tp.partition
		}
		offs, err := listOffsets(ctx, c.cl, k.topic, cps[0].start, c.cfg.readCommitted, ps)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byPart := make(map[int32]*sluicev1.PartitionOffset, len(offs))
		for _, o := range offs {
			byPart[o.GetPartition()] = o
		}
		c.mu.Lock()
		for _, cp := range cps {
			cur := c.mu.parts[cp.tp]
			if cur == nil || cur.moved != cp.moved || cur.resolved {
				continue
			}
			o := byPart[cp.tp.partition]
			switch {
			case o == nil:
				cur.failed = &Error{Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION, Message: "no offset returned"}
			case o.GetError() != nil && readRetriable(fromProto(o.GetError())):
				// Resolved again on the next Poll, after a backoff.
				c.mu.retry, refresh[k.topic] = true, true
			case o.GetError() != nil:
				cur.failed = fromProto(o.GetError())
			case o.GetOffset() < 0:
				cur.resolved, cur.offset = true, o.GetHighWatermark()
			default:
				cur.resolved, cur.offset = true, o.GetOffset()
			}
			if cur.failed != nil {
				errs = append(errs, &PartitionError{Topic: cp.tp.topic, Partition: cp.tp.partition, Err: cur.failed})
			}
		}
		c.mu.Unlock()
	}
	for topic := range refresh {
		c.cl.refresh(ctx, topic) //nolint:errcheck // best effort; the next Poll retries
	}
	return errs
}

// readRetriable reports whether a read (ListOffsets, Fetch) may be sent again after
// err: the reasons a produce is retried for, and, since a read changes nothing, a
// transport failure without a reason too (a node that could not reach the leader).
func readRetriable(err error) bool { return retriable(err, true) }

func listOffsets(ctx context.Context, cl *cluster, topic string, o Offset, readCommitted bool, partitions []int32) ([]*sluicev1.PartitionOffset, error) {
	var resp *sluicev1.ListOffsetsResponse
	err := cl.call(ctx, func(ctx context.Context, cc *grpc.ClientConn) (err error) {
		resp, err = sluicev1.NewAdminServiceClient(cc).ListOffsets(ctx, &sluicev1.ListOffsetsRequest{
			Topic: topic, Partitions: partitions, Spec: o.spec(), ReadCommitted: readCommitted,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetOffsets(), nil
}
