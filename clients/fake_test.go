package clients_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// fake is an in-process cluster of n nodes that speaks the v1 API over real gRPC on
// loopback, storing batches with package batch as the server does. Tests steer it
// through its fields (under mu) and hooks.
type fake struct {
	mu        sync.Mutex
	nodes     []*fakeNode
	topics    map[string][]*fakePart
	nextPID   int64
	changed   chan struct{} // closed and replaced on every append
	noStream  bool          // ProduceStream answers UNIMPLEMENTED
	noInit    bool          // InitProducer answers UNIMPLEMENTED
	metaCalls int
	// produceHook runs before a batch is appended; a non-nil error is returned instead.
	// With appendThenFail, the batch is appended first and the error returned anyway
	// (a lost acknowledgement).
	produceHook    func(node int32, req *sluicev1.ProduceRequest) error
	appendThenFail bool
	// breakStreams > 0 makes that many ProduceStreams end with UNAVAILABLE right after
	// appending a batch, before answering it.
	breakStreams int
	// offsetsUnavailable and fetchUnavailable > 0 make that many ListOffsets and Fetch
	// answers carry, for every partition, the error a node gives when it cannot reach
	// the partition's leader: UNAVAILABLE without a reason.
	offsetsUnavailable, fetchUnavailable int
	// held holds the answers of a node's ProduceStreams (not the appends) until its
	// channel is closed (holdAnswers).
	held map[int32]chan struct{}
}

// unreachableLeader is the per-partition error of a node that cannot reach the leader.
func unreachableLeader() *sluicev1.Error {
	return &sluicev1.Error{Code: int32(codes.Unavailable), Message: "connection error: connection refused"}
}

type fakePart struct {
	leader  int32
	batches []fakeBatch
	next    int64
	seqs    map[int64]fakeSeq // producer id -> last batch
}

type fakeSeq struct {
	last int32 // last sequence written
	base int64 // base offset of that batch
	// recent are the last five batches (first sequence -> base offset): a retry of
	// any of them is answered with its own offset, as the server does.
	recent []fakeRecent
}

type fakeRecent struct {
	first int32
	base  int64
}

type fakeBatch struct {
	base   int64
	stored []byte
	h      batch.Header
	node   int32
}

type fakeNode struct {
	sluicev1.UnimplementedProducerServiceServer
	sluicev1.UnimplementedConsumerServiceServer
	sluicev1.UnimplementedClusterServiceServer
	sluicev1.UnimplementedAdminServiceServer
	f    *fake
	id   int32
	addr string
	srv  *grpc.Server
}

func newFake(t testing.TB, n int) *fake {
	f := startFake(n)
	t.Cleanup(f.stop)
	return f
}

// startFake starts n nodes on loopback; stop them with stop.
func startFake(n int) *fake {
	f := &fake{topics: make(map[string][]*fakePart), changed: make(chan struct{}), nextPID: 1000}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		node := &fakeNode{f: f, id: int32(i + 1), addr: lis.Addr().String(), srv: grpc.NewServer()}
		sluicev1.RegisterProducerServiceServer(node.srv, node)
		sluicev1.RegisterConsumerServiceServer(node.srv, node)
		sluicev1.RegisterClusterServiceServer(node.srv, node)
		sluicev1.RegisterAdminServiceServer(node.srv, node)
		f.nodes = append(f.nodes, node)
		go node.srv.Serve(lis) //nolint:errcheck // ends with Stop
	}
	return f
}

func (f *fake) stop() {
	for _, n := range f.nodes {
		n.srv.Stop()
	}
}

func (f *fake) addrs() []string {
	var a []string
	for _, n := range f.nodes {
		a = append(a, n.addr)
	}
	return a
}

// addTopic creates a topic whose partition i is led by leaders[i % len(leaders)].
func (f *fake) addTopic(name string, partitions int, leaders ...int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(leaders) == 0 {
		leaders = []int32{1}
	}
	ps := make([]*fakePart, partitions)
	for i := range ps {
		ps[i] = &fakePart{leader: leaders[i%len(leaders)], seqs: make(map[int64]fakeSeq)}
	}
	f.topics[name] = ps
}

func (f *fake) setLeader(topic string, partition int, leader int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topics[topic][partition].leader = leader
}

// waitBatches waits until a partition holds n batches (or ctx ends: false).
func (f *fake) waitBatches(ctx context.Context, topic string, partition, n int) bool {
	for {
		f.mu.Lock()
		have := len(f.topics[topic][partition].batches)
		changed := f.changed
		f.mu.Unlock()
		if have >= n {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// log returns the batches of a partition.
func (f *fake) log(topic string, partition int) []fakeBatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeBatch(nil), f.topics[topic][partition].batches...)
}

func apiError(code codes.Code, reason string, md map[string]string) error {
	st, _ := status.New(code, reason).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "sluice.v1", Metadata: md})
	return st.Err()
}

// holdAnswers appends what node id's ProduceStreams receive but holds their answers
// until release is called: a request in flight that takes long to be answered, while
// the node goes on receiving. Release is idempotent and runs at cleanup.
func (f *fake) holdAnswers(t testing.TB, id int32) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	if f.held == nil {
		f.held = make(map[int32]chan struct{})
	}
	f.held[id] = ch
	f.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

func (n *fakeNode) produce(ctx context.Context, req *sluicev1.ProduceRequest) (*sluicev1.ProduceResponse, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	parts, ok := f.topics[req.GetTopic()]
	if !ok {
		return nil, apiError(codes.NotFound, "UNKNOWN_TOPIC", map[string]string{"topic": req.GetTopic()})
	}
	pi := int(req.GetPartition())
	if req.Partition == nil || pi < 0 || pi >= len(parts) {
		return nil, apiError(codes.NotFound, "UNKNOWN_PARTITION", nil)
	}
	p := parts[pi]
	var hookErr error
	if f.produceHook != nil {
		hookErr = f.produceHook(n.id, req)
		if hookErr != nil && !f.appendThenFail {
			return nil, hookErr
		}
	}
	if p.leader != n.id {
		return nil, apiError(codes.Unavailable, "NOT_LEADER", map[string]string{
			"leader": strconv.Itoa(int(p.leader)), "leader_address": f.nodes[p.leader-1].addr})
	}
	stored, h, err := batch.Normalize(req.GetBatch(), batch.Limits{})
	if err != nil {
		return nil, apiError(codes.InvalidArgument, "CORRUPT_BATCH", nil)
	}
	if h.ProducerID > 0 {
		last, seen := p.seqs[h.ProducerID]
		switch {
		case seen && h.BaseSequence <= last.last:
			for _, r := range last.recent {
				if r.first == h.BaseSequence {
					return &sluicev1.ProduceResponse{Partition: int32(pi), BaseOffset: r.base, Duplicate: true, LogAppendTimeMs: -1}, hookErr
				}
			}
			return nil, apiError(codes.FailedPrecondition, "OUT_OF_ORDER_SEQUENCE", nil)
		case (seen && h.BaseSequence != last.last+1) || (!seen && h.BaseSequence != 0):
			return nil, apiError(codes.FailedPrecondition, "OUT_OF_ORDER_SEQUENCE", nil)
		}
		recent := append(last.recent, fakeRecent{first: h.BaseSequence, base: p.next})
		if len(recent) > 5 {
			recent = recent[len(recent)-5:]
		}
		p.seqs[h.ProducerID] = fakeSeq{last: h.LastSequence(), base: p.next, recent: recent}
	}
	base := p.next
	p.batches = append(p.batches, fakeBatch{base: base, stored: stored, h: h, node: n.id})
	p.next += int64(h.RecordCount)
	close(f.changed)
	f.changed = make(chan struct{})
	if hookErr != nil {
		return nil, hookErr
	}
	return &sluicev1.ProduceResponse{Partition: int32(pi), BaseOffset: base, LogAppendTimeMs: -1}, nil
}

func (n *fakeNode) Produce(ctx context.Context, req *sluicev1.ProduceRequest) (*sluicev1.ProduceResponse, error) {
	return n.produce(ctx, req)
}

func (n *fakeNode) ProduceStream(stream grpc.BidiStreamingServer[sluicev1.ProduceStreamRequest, sluicev1.ProduceStreamResponse]) error {
	n.f.mu.Lock()
	no := n.f.noStream
	n.f.mu.Unlock()
	if no {
		return status.Error(codes.Unimplemented, "no streams here")
	}
	// Requests are received and appended on a goroutine of the handler, and answered in
	// their order here, so that answers can be held (holdAnswers) while later requests
	// are still received. A nil answer ends the stream with brk (breakStreams).
	ctx := stream.Context()
	answers := make(chan *sluicev1.ProduceStreamResponse, 1024)
	var recvErr error // set before answers is closed
	brk := status.Error(codes.Unavailable, "connection reset")
	go func() {
		defer close(answers)
		for {
			req, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr = err
				}
				return
			}
			resp, err := n.produce(ctx, req.GetRequest())
			n.f.mu.Lock()
			broken := err == nil && n.f.breakStreams > 0
			if broken {
				n.f.breakStreams--
			}
			n.f.mu.Unlock()
			var out *sluicev1.ProduceStreamResponse
			if !broken {
				out = produceAnswer(req.GetCorrelationId(), resp, err)
			}
			select {
			case answers <- out:
			case <-ctx.Done():
				return
			}
			if broken {
				return
			}
		}
	}()
	for out := range answers {
		if out == nil {
			return brk
		}
		n.f.mu.Lock()
		hold := n.f.held[n.id]
		n.f.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
	return recvErr
}

// produceAnswer is the stream answer to a produce request's outcome.
func produceAnswer(corr uint64, resp *sluicev1.ProduceResponse, err error) *sluicev1.ProduceStreamResponse {
	if err == nil {
		return &sluicev1.ProduceStreamResponse{CorrelationId: corr, Response: resp}
	}
	st := status.Convert(err)
	pe := &sluicev1.Error{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			pe.Reason = sluicev1.ErrorReason(sluicev1.ErrorReason_value["ERROR_REASON_"+info.GetReason()])
			pe.Metadata = info.GetMetadata()
		}
	}
	return &sluicev1.ProduceStreamResponse{CorrelationId: corr, Error: pe}
}

func (n *fakeNode) InitProducer(ctx context.Context, req *sluicev1.InitProducerRequest) (*sluicev1.InitProducerResponse, error) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	if n.f.noInit {
		return nil, status.Error(codes.Unimplemented, "no idempotence here")
	}
	n.f.nextPID++
	return &sluicev1.InitProducerResponse{ProducerId: n.f.nextPID, ProducerEpoch: 0}, nil
}

func (n *fakeNode) GetMetadata(ctx context.Context, req *sluicev1.GetMetadataRequest) (*sluicev1.GetMetadataResponse, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metaCalls++
	resp := &sluicev1.GetMetadataResponse{ClusterId: "fake", ControllerId: 1}
	for _, nd := range f.nodes {
		resp.Nodes = append(resp.Nodes, &sluicev1.Node{NodeId: nd.id, Address: nd.addr, Alive: true})
	}
	names := req.GetTopics()
	if len(names) == 0 {
		for t := range f.topics {
			names = append(names, t)
		}
		sort.Strings(names)
	}
	for _, t := range names {
		parts, ok := f.topics[t]
		if !ok {
			continue
		}
		tm := &sluicev1.TopicMetadata{Name: t}
		for i, p := range parts {
			tm.Partitions = append(tm.Partitions, &sluicev1.PartitionMetadata{Partition: int32(i), Leader: p.leader, Replicas: []int32{p.leader}})
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}

func (n *fakeNode) Fetch(ctx context.Context, req *sluicev1.FetchRequest) (*sluicev1.FetchResponse, error) {
	f := n.f
	deadline := time.Now().Add(time.Duration(req.GetMaxWaitMs()) * time.Millisecond)
	for {
		f.mu.Lock()
		parts, ok := f.topics[req.GetTopic()]
		if !ok {
			f.mu.Unlock()
			return nil, apiError(codes.NotFound, "UNKNOWN_TOPIC", nil)
		}
		resp := &sluicev1.FetchResponse{Topic: req.GetTopic()}
		if f.fetchUnavailable > 0 {
			f.fetchUnavailable--
			for _, pos := range req.GetPartitions() {
				resp.Partitions = append(resp.Partitions, &sluicev1.FetchedPartition{Partition: pos.GetPartition(), Error: unreachableLeader()})
			}
			f.mu.Unlock()
			return resp, nil
		}
		any := false
		for _, pos := range req.GetPartitions() {
			fp := &sluicev1.FetchedPartition{Partition: pos.GetPartition()}
			resp.Partitions = append(resp.Partitions, fp)
			if int(pos.GetPartition()) >= len(parts) {
				fp.Error = &sluicev1.Error{Code: int32(codes.NotFound), Reason: sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION}
				continue
			}
			p := parts[pos.GetPartition()]
			if p.leader != n.id {
				fp.Error = &sluicev1.Error{Code: int32(codes.Unavailable), Reason: sluicev1.ErrorReason_ERROR_REASON_NOT_LEADER,
					Metadata: map[string]string{"leader": strconv.Itoa(int(p.leader))}}
				continue
			}
			fp.HighWatermark, fp.LastStableOffset = p.next, p.next
			if pos.GetOffset() < 0 || pos.GetOffset() > p.next {
				fp.Error = &sluicev1.Error{Code: int32(codes.OutOfRange), Reason: sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE,
					Metadata: map[string]string{"earliest": "0", "latest": strconv.FormatInt(p.next, 10)}}
				continue
			}
			size := 0
			for _, b := range p.batches {
				if b.base+int64(b.h.RecordCount) <= pos.GetOffset() {
					continue
				}
				if size > 0 && size+len(b.stored) > int(req.GetPartitionMaxBytes()) {
					break
				}
				rb, err := batch.Splice(b.stored, b.base, 1, req.GetRecordFormat())
				if err != nil {
					f.mu.Unlock()
					return nil, status.Error(codes.Internal, err.Error())
				}
				fp.Batches = append(fp.Batches, rb)
				size += len(b.stored)
				any = true
			}
		}
		changed := f.changed
		f.mu.Unlock()
		if any || !time.Now().Before(deadline) {
			return resp, nil
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

func (n *fakeNode) ListOffsets(ctx context.Context, req *sluicev1.ListOffsetsRequest) (*sluicev1.ListOffsetsResponse, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	parts, ok := f.topics[req.GetTopic()]
	if !ok {
		return nil, apiError(codes.NotFound, "UNKNOWN_TOPIC", nil)
	}
	ps := req.GetPartitions()
	if len(ps) == 0 {
		for i := range parts {
			ps = append(ps, int32(i))
		}
	}
	resp := &sluicev1.ListOffsetsResponse{}
	if f.offsetsUnavailable > 0 {
		f.offsetsUnavailable--
		for _, pi := range ps {
			resp.Offsets = append(resp.Offsets, &sluicev1.PartitionOffset{Partition: pi, Error: unreachableLeader()})
		}
		return resp, nil
	}
	for _, pi := range ps {
		p := parts[pi]
		po := &sluicev1.PartitionOffset{Partition: pi, HighWatermark: p.next, TimestampMs: -1}
		switch s := req.GetSpec().GetSpec().(type) {
		case *sluicev1.OffsetSpec_Earliest:
			po.Offset = 0
		case *sluicev1.OffsetSpec_TimestampMs:
			po.Offset = -1
			for _, b := range p.batches {
				if b.h.MaxTimestampMs >= s.TimestampMs {
					po.Offset, po.TimestampMs = b.base, b.h.MaxTimestampMs
					break
				}
			}
		default:
			po.Offset = p.next
		}
		resp.Offsets = append(resp.Offsets, po)
	}
	return resp, nil
}

func (n *fakeNode) CreateTopic(ctx context.Context, req *sluicev1.CreateTopicRequest) (*sluicev1.CreateTopicResponse, error) {
	n.f.mu.Lock()
	_, exists := n.f.topics[req.GetName()]
	n.f.mu.Unlock()
	if exists {
		return nil, apiError(codes.AlreadyExists, "TOPIC_EXISTS", map[string]string{"topic": req.GetName()})
	}
	np := max(int(req.GetPartitions()), 1)
	var leaders []int32
	for _, nd := range n.f.nodes {
		leaders = append(leaders, nd.id)
	}
	n.f.addTopic(req.GetName(), np, leaders...)
	return &sluicev1.CreateTopicResponse{Topic: n.describe(req.GetName())}, nil
}

func (n *fakeNode) describe(name string) *sluicev1.TopicDescription {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	td := &sluicev1.TopicDescription{Name: name, ReplicationFactor: 1}
	for i, p := range n.f.topics[name] {
		td.Partitions = append(td.Partitions, &sluicev1.PartitionDescription{Partition: int32(i), Leader: p.leader, HighWatermark: p.next})
	}
	return td
}

func (n *fakeNode) DescribeTopic(ctx context.Context, req *sluicev1.DescribeTopicRequest) (*sluicev1.DescribeTopicResponse, error) {
	n.f.mu.Lock()
	_, ok := n.f.topics[req.GetName()]
	n.f.mu.Unlock()
	if !ok {
		return nil, apiError(codes.NotFound, "UNKNOWN_TOPIC", map[string]string{"topic": req.GetName()})
	}
	return &sluicev1.DescribeTopicResponse{Topic: n.describe(req.GetName())}, nil
}

func (n *fakeNode) ListTopics(ctx context.Context, req *sluicev1.ListTopicsRequest) (*sluicev1.ListTopicsResponse, error) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	resp := &sluicev1.ListTopicsResponse{}
	for name, ps := range n.f.topics {
		resp.Topics = append(resp.Topics, &sluicev1.TopicSummary{Name: name, Partitions: int32(len(ps)), ReplicationFactor: 1})
	}
	sort.Slice(resp.Topics, func(i, j int) bool { return resp.Topics[i].Name < resp.Topics[j].Name })
	return resp, nil
}

func (n *fakeNode) DeleteTopic(ctx context.Context, req *sluicev1.DeleteTopicRequest) (*sluicev1.DeleteTopicResponse, error) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	if _, ok := n.f.topics[req.GetName()]; !ok {
		return nil, apiError(codes.NotFound, "UNKNOWN_TOPIC", map[string]string{"topic": req.GetName()})
	}
	delete(n.f.topics, req.GetName())
	return &sluicev1.DeleteTopicResponse{}, nil
}
