package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/cluster"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Consume streams and partitions with no replica on this node. Such a
// subscription is fed by a remoteFeed: a goroutine, owned by the stream,
// that long-polls Fetch for the partition (which this node forwards to a
// node with a replica, fetch.go) and buffers up to remoteFeedBytes of
// batches; push sends them under the stream's credit like local ones. The
// stream stops every feed when it ends, and a feed when its subscription
// goes (unsubscribe, seek, an error).

const (
	remoteFeedBytes  = 4 << 20
	remoteFeedWaitMs = 30_000
)

type remoteFeed struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     struct {
		sync.Mutex
		batches []*sluicev1.RecordBatch
		bytes   int
		hw      int64
		err     error
		ready   chan struct{} // closed when a batch or an error arrives
		space   chan struct{} // closed when the consumer takes batches
	}
}

// startFeed starts reading topic/part from offset in format.
func (st *consumeStream) startFeed(ctx context.Context, topic string, part int32, offset uint64, format sluicev1.RecordFormat) *remoteFeed {
	ctx, cancel := context.WithCancel(ctx)
	f := &remoteFeed{cancel: cancel, done: make(chan struct{})}
	f.mu.ready = make(chan struct{})
	f.mu.space = make(chan struct{})
	cs := &consumerService{s: st.s}
	go func() {
		defer close(f.done)
		next := int64(offset)
		backoff := 10 * time.Millisecond
		for {
			f.mu.Lock()
			for f.mu.bytes >= remoteFeedBytes {
				space := f.mu.space
				f.mu.Unlock()
				select {
				case <-space:
				case <-ctx.Done():
					return
				}
				f.mu.Lock()
			}
			f.mu.Unlock()
			resp, err := cs.Fetch(ctx, &sluicev1.FetchRequest{
				Topic: topic, MinBytes: 1, MaxWaitMs: remoteFeedWaitMs, RecordFormat: format,
				Partitions: []*sluicev1.FetchPosition{{Partition: part, Offset: next}},
			})
			if ctx.Err() != nil {
				return
			}
			var perr error
			switch {
			case err != nil:
				perr = err
			case len(resp.GetPartitions()) != 1:
				perr = newAPIError(codes.Internal, sluicev1.ErrorReason_ERROR_REASON_UNSPECIFIED, nil, "fetch answered %d partitions", len(resp.GetPartitions()))
			case resp.GetPartitions()[0].GetError() != nil:
				perr = apiErrorOfProto(resp.GetPartitions()[0].GetError())
			}
			if perr != nil {
				if retriable(perr) {
					select { // the replica is moving or electing: try again
					case <-time.After(backoff):
						backoff = min(2*backoff, time.Second)
						continue
					case <-ctx.Done():
						return
					}
				}
				f.mu.Lock()
				f.mu.err = perr
				close(f.mu.ready)
				f.mu.ready = make(chan struct{})
				f.mu.Unlock()
				return
			}
			backoff = 10 * time.Millisecond
			fp := resp.GetPartitions()[0]
			if len(fp.GetBatches()) == 0 {
				continue
			}
			f.mu.Lock()
			for _, b := range fp.GetBatches() {
				f.mu.batches = append(f.mu.batches, b)
				f.mu.bytes += proto.Size(b)
				next = b.GetBaseOffset() + int64(b.GetRecordCount())
			}
			f.mu.hw = fp.GetHighWatermark()
			close(f.mu.ready)
			f.mu.ready = make(chan struct{})
			f.mu.Unlock()
		}
	}()
	return f
}

func (f *remoteFeed) stop() {
	f.cancel()
	<-f.done
}

// readyChan is closed when the feed next has something new.
func (f *remoteFeed) readyChan() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.ready
}

// peek returns the first buffered batch (nil if none) and the feed's error.
func (f *remoteFeed) peek() (*sluicev1.RecordBatch, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.mu.batches) > 0 {
		return f.mu.batches[0], f.mu.hw, nil
	}
	return nil, f.mu.hw, f.mu.err
}

func (f *remoteFeed) pop(size int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.batches[0] = nil
	f.mu.batches = f.mu.batches[1:]
	f.mu.bytes -= size
	close(f.mu.space)
	f.mu.space = make(chan struct{})
}

// retriable reports whether a fetch failure is worth retrying.
func retriable(err error) bool { return status.Code(err) == codes.Unavailable }

// apiErrorOfProto rebuilds an API error from its wire form.
func apiErrorOfProto(e *sluicev1.Error) *apiError {
	return &apiError{code: codes.Code(e.GetCode()), reason: e.GetReason(), md: e.GetMetadata(), msg: e.GetMessage()}
}

// resolveRemote resolves a start position of a partition held elsewhere.
func (st *consumeStream) resolveRemote(ctx context.Context, topic string, part int32, pos *sluicev1.StartPosition) (uint64, error) {
	spec := &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}}
	switch v := pos.GetPosition().(type) {
	case *sluicev1.StartPosition_Latest:
		spec.Spec = &sluicev1.OffsetSpec_Latest{Latest: true}
	case *sluicev1.StartPosition_TimestampMs:
		spec.Spec = &sluicev1.OffsetSpec_TimestampMs{TimestampMs: v.TimestampMs}
	case *sluicev1.StartPosition_Offset:
		spec.Spec = &sluicev1.OffsetSpec_Latest{Latest: true}
	}
	resp, err := (&adminService{s: st.s}).ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: []int32{part}, Spec: spec})
	if err != nil {
		return 0, err
	}
	if len(resp.GetOffsets()) != 1 {
		return 0, &cluster.UnknownPartitionError{Topic: topic, Partition: part}
	}
	po := resp.GetOffsets()[0]
	if po.GetError() != nil {
		return 0, apiErrorOfProto(po.GetError())
	}
	if v, ok := pos.GetPosition().(*sluicev1.StartPosition_Offset); ok {
		if v.Offset < po.GetLogStartOffset() || v.Offset > po.GetHighWatermark() {
			return 0, outOfRange(v.Offset, uint64(po.GetLogStartOffset()), uint64(po.GetHighWatermark()))
		}
		return uint64(v.Offset), nil
	}
	if po.GetOffset() < 0 { // no record at or after the timestamp
		return uint64(po.GetHighWatermark()), nil
	}
	return uint64(po.GetOffset()), nil
}

// pushRemote sends what the credit allows from a fed subscription.
func (st *consumeStream) pushRemote(ctx context.Context, sub *subscription) error {
	k := sub.key
	sub.changed = sub.feed.readyChan()
	for st.credit > 0 {
		rb, hw, err := sub.feed.peek()
		if err != nil {
			st.dropSubscription(k)
			return st.partitionError(k, st.s.toAPIError(ctx, err))
		}
		if rb == nil {
			return nil
		}
		size := proto.Size(rb)
		if int64(size) > st.credit {
			if !st.sentSinceGrant && sub.tooSmall != uint64(rb.GetBaseOffset())+1 {
				sub.tooSmall = uint64(rb.GetBaseOffset()) + 1
				e := newAPIError(codes.FailedPrecondition, sluicev1.ErrorReason_ERROR_REASON_CREDIT_TOO_SMALL,
					map[string]string{"batch_size": itoa(size)}, "the next batch needs %d bytes of credit; %d granted", size, st.credit)
				return st.partitionError(k, e)
			}
			return nil
		}
		msg := &sluicev1.ConsumeResponse{Response: &sluicev1.ConsumeResponse_Batch{Batch: &sluicev1.ConsumedBatch{
			Topic: k.topic, Partition: k.part, Batch: rb, HighWatermark: hw,
		}}}
		if err := st.send(msg); err != nil {
			return err
		}
		sub.feed.pop(size)
		st.credit -= int64(size)
		st.sentSinceGrant = true
		sub.offset = uint64(rb.GetBaseOffset()) + uint64(rb.GetRecordCount())
		st.s.metrics.bytesOut.WithLabelValues(k.topic).Add(float64(size))
		st.s.metrics.recordsOut.WithLabelValues(k.topic).Add(float64(rb.GetRecordCount()))
	}
	return nil
}

// dropSubscription removes a subscription, stopping its feed.
func (st *consumeStream) dropSubscription(k subKey) {
	if sub, ok := st.subs[k]; ok && sub.feed != nil {
		sub.feed.stop()
	}
	delete(st.subs, k)
}

// stopFeeds stops every feed of the stream (when it ends).
func (st *consumeStream) stopFeeds() {
	for _, sub := range st.subs {
		if sub.feed != nil {
			sub.feed.stop()
			sub.feed = nil
		}
	}
}

// subscribeRemote subscribes a partition this node holds no replica of.
func (st *consumeStream) subscribeRemote(ctx context.Context, t *cluster.Topic, idx int32, req *sluicev1.Subscription) error {
	k := subKey{t.Name, idx}
	off, err := st.resolveRemote(ctx, t.Name, idx, req.GetStart())
	if err != nil {
		return st.partitionError(k, st.s.toAPIError(ctx, err))
	}
	if _, exists := st.subs[k]; !exists {
		st.order = append(st.order, k)
	}
	st.dropSubscription(k)
	st.subs[k] = &subscription{key: k, topicID: t.ID, offset: off, format: req.GetRecordFormat(),
		feed: st.startFeed(ctx, t.Name, idx, off, req.GetRecordFormat())}
	return nil
}

// seekRemote moves a fed subscription: a new feed from the new offset.
func (st *consumeStream) seekRemote(ctx context.Context, sub *subscription, pos *sluicev1.StartPosition) error {
	off, err := st.resolveRemote(ctx, sub.key.topic, sub.key.part, pos)
	if err != nil {
		st.dropSubscription(sub.key)
		return st.partitionError(sub.key, st.s.toAPIError(ctx, err))
	}
	sub.feed.stop()
	sub.offset, sub.tooSmall, sub.changed = off, 0, nil
	sub.feed = st.startFeed(ctx, sub.key.topic, sub.key.part, off, sub.format)
	return nil
}
