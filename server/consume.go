package server

import (
	"context"
	"errors"
	"reflect"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/replication"
	"github.com/sluicehq/sluice/storage"
)

// consumeReadBytes bounds one read of a partition on a Consume stream.
const consumeReadBytes = 1 << 20

type subKey struct {
	topic string
	part  int32
}

// subscription is one partition read by a Consume stream.
type subscription struct {
	key     subKey
	topicID string
	p       *replication.Partition // nil when fed from another node
	feed    *remoteFeed            // no replica here (consume_remote.go)
	offset  uint64
	format  sluicev1.RecordFormat
	changed <-chan struct{} // taken before the last read
	// tooSmall is the base offset (+1) of the batch CREDIT_TOO_SMALL was
	// last reported for.
	tooSmall uint64
}

// consumeStream is the state of one Consume call. Only its handler
// goroutine touches it; a second goroutine only receives requests.
type consumeStream struct {
	s      *Server
	stream grpc.BidiStreamingServer[sluicev1.ConsumeRequest, sluicev1.ConsumeResponse]
	subs   map[subKey]*subscription
	order  []subKey // subscription order, rotated for fairness
	credit int64    // bytes the server may still send
	// sentSinceGrant is false after a grant until a batch is sent.
	sentSinceGrant bool
	group          *streamGroup // set once the stream joined a group (group_consume.go)
	// rrefs counts the references to the buffer of the last read: the
	// stream's own until the next read, and one per message sent from it
	// until grpc frees it (servebuf.go). rbatches is reused by every read.
	rrefs    *leaseRefs
	rbatches []storage.Batch
}

// Consume pushes batches of the subscribed partitions as soon as their
// high watermarks move, never more bytes than the credit granted. The size
// of a batch, for credit, is the encoded size of its RecordBatch message.
func (cs *consumerService) Consume(stream grpc.BidiStreamingServer[sluicev1.ConsumeRequest, sluicev1.ConsumeResponse]) error {
	ctx := stream.Context()
	st := &consumeStream{s: cs.s, stream: stream, subs: map[subKey]*subscription{}}
	defer st.leaveGroup(ctx)
	defer st.stopFeeds()
	defer st.releaseBuffer()
	reqs, recvErr := receive(ctx, stream.Recv)
	for {
		if err := st.push(ctx); err != nil {
			return err
		}
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(cs.s.stop)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(recvErr)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(reqs)},
		}
		for _, ch := range st.groupChans() {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		for _, ch := range st.groupTimers() {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		if st.credit > 0 {
			for _, k := range st.order {
				if sub := st.subs[k]; sub.changed != nil {
					cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(sub.changed)})
				}
			}
		}
		chosen, v, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			return ctx.Err()
		case 1:
			return newAPIError(codes.Unavailable, sluicev1.ErrorReason_ERROR_REASON_NODE_UNAVAILABLE, nil, "the node is shutting down")
		case 2:
			err, _ := v.Interface().(error)
			if isEOF(err) {
				return nil
			}
			return err
		case 3:
			if err := st.handle(ctx, v.Interface().(*sluicev1.ConsumeRequest)); err != nil {
				return err
			}
		}
		if err := st.groupPoll(ctx); err != nil {
			return err
		}
	}
}

// handle applies one client message.
func (st *consumeStream) handle(ctx context.Context, req *sluicev1.ConsumeRequest) error {
	switch r := req.GetRequest().(type) {
	case *sluicev1.ConsumeRequest_Credit:
		st.credit += r.Credit.GetBytes()
		st.sentSinceGrant = false
	case *sluicev1.ConsumeRequest_Subscribe:
		return st.subscribe(ctx, r.Subscribe)
	case *sluicev1.ConsumeRequest_Unsubscribe:
		parts := r.Unsubscribe.GetPartitions()
		if len(parts) == 0 {
			for k := range st.subs {
				if k.topic == r.Unsubscribe.GetTopic() {
					parts = append(parts, k.part)
				}
			}
		}
		for _, p := range parts {
			k := subKey{r.Unsubscribe.GetTopic(), p}
			st.dropSubscription(k)
			st.order = slices.DeleteFunc(st.order, func(x subKey) bool { return x == k })
		}
	case *sluicev1.ConsumeRequest_Seek:
		k := subKey{r.Seek.GetTopic(), r.Seek.GetPartition()}
		sub, ok := st.subs[k]
		if !ok {
			return st.partitionError(k, invalidField("seek", "partition %s/%d is not subscribed", k.topic, k.part))
		}
		if sub.feed != nil {
			return st.seekRemote(ctx, sub, r.Seek.GetPosition())
		}
		off, err := st.resolve(sub.p, r.Seek.GetPosition())
		if err != nil {
			delete(st.subs, k)
			st.order = slices.DeleteFunc(st.order, func(x subKey) bool { return x == k })
			return st.partitionError(k, st.s.toAPIError(ctx, err))
		}
		sub.offset, sub.tooSmall, sub.changed = off, 0, nil
	case *sluicev1.ConsumeRequest_Group:
		return st.joinGroup(ctx, r.Group)
	case *sluicev1.ConsumeRequest_Commit:
		return st.commitGroup(ctx, r.Commit)
	default:
		return invalidField("request", "one of subscribe, unsubscribe, seek, credit, group or commit is required")
	}
	return nil
}

func (st *consumeStream) subscribe(ctx context.Context, sub *sluicev1.Subscription) error {
	t, ok := st.s.core.md.State().Topic(sub.GetTopic())
	if !ok {
		return st.s.toAPIError(ctx, &cluster.UnknownTopicError{Topic: sub.GetTopic()})
	}
	parts := sub.GetPartitions()
	if len(parts) == 0 {
		for _, p := range t.Partitions {
			parts = append(parts, p.Index)
		}
	}
	for _, idx := range parts {
		k := subKey{t.Name, idx}
		p, _, err := st.s.core.md.Partition(t.Name, idx)
		if errors.As(err, new(*cluster.NotReplicaError)) {
			if err := st.subscribeRemote(ctx, t, idx, sub); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if err := st.partitionError(k, st.s.toAPIError(ctx, err)); err != nil {
				return err
			}
			continue
		}
		off, err := st.resolve(p, sub.GetStart())
		if err != nil {
			if err := st.partitionError(k, st.s.toAPIError(ctx, err)); err != nil {
				return err
			}
			continue
		}
		if _, exists := st.subs[k]; !exists {
			st.order = append(st.order, k)
		}
		st.dropSubscription(k)
		st.subs[k] = &subscription{key: k, topicID: t.ID, p: p, offset: off, format: sub.GetRecordFormat()}
	}
	return nil
}

// resolve turns a start position into an offset (earliest when unset).
func (st *consumeStream) resolve(p *replication.Partition, pos *sluicev1.StartPosition) (uint64, error) {
	switch v := pos.GetPosition().(type) {
	case *sluicev1.StartPosition_Latest:
		return p.HighWatermark(), nil
	case *sluicev1.StartPosition_Offset:
		start, hw := p.StartOffset(), p.HighWatermark()
		if v.Offset < int64(start) || v.Offset > int64(hw) {
			return 0, outOfRange(v.Offset, start, hw)
		}
		return uint64(v.Offset), nil
	case *sluicev1.StartPosition_TimestampMs:
		off, ok, err := p.OffsetForTime(v.TimestampMs)
		if err != nil {
			return 0, err
		}
		if !ok {
			return p.HighWatermark(), nil
		}
		return off, nil
	default:
		return p.StartOffset(), nil
	}
}

// push sends what the credit allows from every subscription, taking each
// one's change channel before reading it.
func (st *consumeStream) push(ctx context.Context) error {
	if len(st.order) == 0 {
		return nil
	}
	var (
		tooSmall     *subscription
		tooSmallSize int
		tooSmallAt   uint64
	)
	for _, k := range st.order {
		sub := st.subs[k]
		if sub.feed != nil {
			if err := st.pushRemote(ctx, sub); err != nil {
				return err
			}
			continue
		}
		sub.changed = sub.p.Changed()
		for st.credit > 0 {
			bs, err := st.read(sub, int(min(st.credit, consumeReadBytes)))
			if err != nil {
				delete(st.subs, k)
				err = st.s.readError(k.topic, sub.topicID, err)
				if err := st.partitionError(k, st.s.toAPIError(ctx, err)); err != nil {
					return err
				}
				break
			}
			if len(bs) == 0 {
				break
			}
			sent := false
			for _, b := range bs {
				rb, err := batch.Splice(b.Data, int64(b.BaseOffset), int64(b.Term), sub.format)
				if err != nil {
					return st.s.toAPIError(ctx, errors.Join(errCorruptStored, err))
				}
				msg := &sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_Batch{Batch: &sluicev1.ConsumedBatch{
					Topic: k.topic, Partition: k.part, Batch: rb, HighWatermark: int64(sub.p.HighWatermark()),
				}}}
				size := int64(proto.Size(rb))
				if size > st.credit {
					if tooSmall == nil && sub.tooSmall != b.BaseOffset+1 {
						tooSmall, tooSmallSize, tooSmallAt = sub, int(size), b.BaseOffset+1
					}
					break
				}
				if err := st.sendBatch(msg); err != nil {
					return err
				}
				st.credit -= size
				st.sentSinceGrant = true
				sub.offset = b.BaseOffset + uint64(b.Records)
				st.s.metrics.bytesOut.WithLabelValues(k.topic).Add(float64(len(b.Data)))
				st.s.metrics.recordsOut.WithLabelValues(k.topic).Add(float64(b.Records))
				sent = true
			}
			if !sent {
				break
			}
		}
	}
	st.order = slices.DeleteFunc(st.order, func(k subKey) bool { _, ok := st.subs[k]; return !ok })
	if len(st.order) > 1 { // the next round starts with the next partition
		st.order = append(st.order[1:], st.order[0])
	}
	// A batch larger than all the credit the client has just granted would
	// stall the stream for good: say so (once per batch); the partition
	// stays subscribed and resumes when enough credit arrives.
	if tooSmall != nil && !st.sentSinceGrant {
		tooSmall.tooSmall = tooSmallAt
		e := newAPIError(codes.FailedPrecondition, sluicev1.ErrorReason_ERROR_REASON_CREDIT_TOO_SMALL,
			map[string]string{"batch_size": itoa(tooSmallSize)}, "the next batch needs %d bytes of credit; %d granted", tooSmallSize, st.credit)
		return st.send(&sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_PartitionError{PartitionError: &sluicev1.PartitionError{
			Topic: tooSmall.key.topic, Partition: tooSmall.key.part, Error: e.proto(),
		}}})
	}
	return nil
}

// read reads sub from its offset into the stream's buffer.
func (st *consumeStream) read(sub *subscription, budget int) ([]storage.Batch, error) {
	st.releaseBuffer()
	l := &readLease{}
	buf := l.buf(consumeReadBytes)
	st.rrefs = newLeaseRefs(l)
	bs, err := sub.p.ReadInto(st.rbatches, buf, sub.offset, budget)
	if err == nil {
		st.rbatches = bs
	}
	return bs, err
}

// releaseBuffer drops the stream's reference to its last read buffer.
func (st *consumeStream) releaseBuffer() {
	if st.rrefs != nil {
		st.rrefs.Put(nil)
		st.rrefs = nil
	}
}

// sendBatch sends a message whose batch aliases the last read buffer.
func (st *consumeStream) sendBatch(m *sluicev1.ConsumeResponse) error {
	consumeRefs.Store(m, st.rrefs)
	defer consumeRefs.Delete(m)
	return st.stream.Send(m)
}

func (st *consumeStream) partitionError(k subKey, e *apiError) error {
	return st.send(&sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_PartitionError{PartitionError: &sluicev1.PartitionError{
		Topic: k.topic, Partition: k.part, Error: e.proto(),
	}}})
}

func (st *consumeStream) send(m *sluicev1.ConsumeResponse) error { return st.stream.Send(m) }
