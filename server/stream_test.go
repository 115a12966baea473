package server_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

func TestFetchLongPollWakesOnProduce(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "poll", 2, nil)
	type result struct {
		resp *sluicev1.FetchResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The wait is long: a fetch that is not woken by the produce
		// comes back empty after it and fails the test.
		resp, err := n.Consumer.Fetch(ctxT(t), &sluicev1.FetchRequest{
			Topic: "poll", MinBytes: 1, MaxWaitMs: 50_000,
			Partitions: []*sluicev1.FetchPosition{{Partition: 0}, {Partition: 1}},
		})
		done <- result{resp, err}
	}()
	// The fetch may not have started waiting yet; either way it must
	// return the batch.
	produce(t, n, "poll", 1, records(1, "late"))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := r.resp.GetPartitions()[1].GetBatches(); len(got) != 1 || string(got[0].GetRecords()[0].GetValue()) != "late-v0" {
		t.Fatalf("long poll returned %v", r.resp)
	}
	if r.resp.GetPartitions()[1].GetHighWatermark() != 1 {
		t.Fatalf("high watermark %d", r.resp.GetPartitions()[1].GetHighWatermark())
	}
}

type consumeClient struct {
	t      *testing.T
	stream sluicev1.ConsumerService_ConsumeClient
	cancel context.CancelFunc
}

func (c *consumeClient) send(r *sluicev1.ConsumeRequest) {
	c.t.Helper()
	if err := c.stream.Send(r); err != nil {
		c.t.Fatal(err)
	}
}

func (c *consumeClient) credit(b int64) {
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Credit{Credit: &sluicev1.Credit{Bytes: b}}})
}

// barrier sends a commit (answered in order, after everything the server
// could push before it) and returns what arrived before the answer.
func (c *consumeClient) barrier() []*sluicev1.ConsumeResponse {
	c.t.Helper()
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Commit{Commit: &sluicev1.StreamCommit{}}})
	var out []*sluicev1.ConsumeResponse
	for {
		m, err := c.stream.Recv()
		if err != nil {
			c.t.Fatal(err)
		}
		if m.GetCommitResult() != nil {
			return out
		}
		out = append(out, m)
	}
}

func (c *consumeClient) recv() *sluicev1.ConsumeResponse {
	c.t.Helper()
	m, err := c.stream.Recv()
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func openConsume(t *testing.T, _ any, client sluicev1.ConsumerServiceClient) *consumeClient {
	ctx, cancel := context.WithCancel(ctxT(t))
	t.Cleanup(cancel)
	s, err := client.Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &consumeClient{t: t, stream: s, cancel: cancel}
}

func TestConsumeNeverExceedsCredit(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "credit", 1, nil)
	for range 10 {
		produce(t, n, "credit", 0, records(4, "c"))
	}
	subscribe := &sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{
		Topic: "credit", Start: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Earliest{Earliest: true}}}}}

	// Learn the size of each batch with plenty of credit.
	a := openConsume(t, n, n.Consumer)
	a.send(subscribe)
	if got := a.barrier(); len(got) != 0 {
		t.Fatalf("pushed %d messages without credit", len(got))
	}
	a.credit(1 << 20)
	all := a.barrier()
	if len(all) != 10 {
		t.Fatalf("got %d batches, want 10", len(all))
	}
	size := make([]int64, 10)
	for i, m := range all {
		size[i] = int64(proto.Size(m.GetBatch().GetBatch()))
	}

	b := openConsume(t, n, n.Consumer)
	b.send(subscribe)
	expect := func(credit int64, want int, what string) []*sluicev1.ConsumeResponse {
		t.Helper()
		b.credit(credit)
		got := b.barrier()
		if len(got) != want {
			t.Fatalf("%s: got %d messages, want %d: %v", what, len(got), want, got)
		}
		return got
	}
	expect(size[0]+size[1]+size[2]+size[3]-1, 3, "credit one byte short of four batches")
	got := expect(1, 1, "the missing byte")
	if got[0].GetBatch().GetBatch().GetBaseOffset() != 12 {
		t.Fatalf("fourth batch: %v", got[0])
	}
	got = expect(size[4]-1, 1, "a grant too small for the next batch")
	pe := got[0].GetPartitionError()
	if pe.GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_CREDIT_TOO_SMALL || pe.GetError().GetMetadata()["batch_size"] != itoa(size[4]) {
		t.Fatalf("want CREDIT_TOO_SMALL, got %v", got[0])
	}
	got = expect(1, 1, "enough credit again")
	if got[0].GetBatch().GetBatch().GetBaseOffset() != 16 {
		t.Fatalf("fifth batch: %v", got[0])
	}
	if err := b.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := b.stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestConsumePushesOnProduce(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "push", 3, nil)
	produce(t, n, "push", 2, records(1, "old"))
	c := openConsume(t, n, n.Consumer)
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{
		Topic: "push", Start: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Latest{Latest: true}}}}})
	c.credit(1 << 20)
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("latest pushed old batches: %v", got)
	}
	produce(t, n, "push", 2, records(1, "new"))
	m := c.recv().GetBatch()
	if m.GetTopic() != "push" || m.GetPartition() != 2 || m.GetBatch().GetBaseOffset() != 1 ||
		string(m.GetBatch().GetRecords()[0].GetValue()) != "new-v0" || m.GetHighWatermark() != 2 {
		t.Fatalf("pushed %v", m)
	}
	// Subscribing at an offset out of range reports it for that partition.
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{
		Topic: "push", Partitions: []int32{0}, Start: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Offset{Offset: 5}}}}})
	pe := c.recv().GetPartitionError()
	if pe.GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE || pe.GetError().GetMetadata()["latest"] != "0" {
		t.Fatalf("partition error %v", pe)
	}
	// Unsubscribe, then new batches stay away.
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Unsubscribe{Unsubscribe: &sluicev1.Unsubscription{Topic: "push"}}})
	c.barrier()
	produce(t, n, "push", 2, records(1, "gone"))
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("unsubscribed stream got %v", got)
	}
}

func TestProduceStreamAnswersInOrder(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "stream", 3, nil)
	s, err := n.Producer.ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	const total = 60
	go func() {
		for i := range total {
			req := &sluicev1.ProduceRequest{Topic: "stream", Partition: proto.Int32(int32(i % 3)), Batch: &sluicev1.RecordBatch{Records: records(2, "s")}}
			if i == 7 {
				req.Topic = "missing"
			}
			if i == 8 {
				req.Batch = nil
			}
			if err := s.Send(&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: uint64(1000 + i)}); err != nil {
				return
			}
		}
		_ = s.CloseSend()
	}()
	next := map[int32]int64{}
	for i := range total {
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if r.GetCorrelationId() != uint64(1000+i) {
			t.Fatalf("response %d has correlation id %d", i, r.GetCorrelationId())
		}
		switch i {
		case 7:
			if r.GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC {
				t.Fatalf("response 7: %v", r)
			}
			continue
		case 8:
			if r.GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST || r.GetError().GetMetadata()["field"] != "batch" {
				t.Fatalf("response 8: %v", r)
			}
			continue
		}
		p := int32(i % 3)
		if r.GetError() != nil || r.GetResponse().GetPartition() != p || r.GetResponse().GetBaseOffset() != next[p] {
			t.Fatalf("response %d: %v (want offset %d)", i, r, next[p])
		}
		next[p] += 2
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("after the last response: %v", err)
	}
}

func TestConsumeReportsDeletedTopic(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "doomed", 1, nil)
	c := openConsume(t, n, n.Consumer)
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{Topic: "doomed"}}})
	c.credit(1 << 20)
	c.barrier()
	if _, err := n.Admin.DeleteTopic(ctxT(t), &sluicev1.DeleteTopicRequest{Name: "doomed"}); err != nil {
		t.Fatal(err)
	}
	pe := c.recv().GetPartitionError()
	if pe.GetTopic() != "doomed" || pe.GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC {
		t.Fatalf("after deletion: %v", pe)
	}
}

func TestConsumeDecompressesOnRequest(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "z", 1, nil)
	recs := records(5, "z")
	b, err := batch.Encode(recs, sluicev1.Compression_COMPRESSION_GZIP)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Producer.Produce(ctxT(t), &sluicev1.ProduceRequest{Topic: "z", Batch: b}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []sluicev1.RecordFormat{sluicev1.RecordFormat_RECORD_FORMAT_STORED, sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED} {
		c := openConsume(t, n, n.Consumer)
		c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{Topic: "z", RecordFormat: f}}})
		c.credit(1 << 20)
		got := c.barrier()
		if len(got) != 1 {
			t.Fatalf("%s: %v", f, got)
		}
		rb := got[0].GetBatch().GetBatch()
		if plain := len(rb.GetRecords()) > 0; plain != (f == sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED) {
			t.Fatalf("%s: records %d, records_data %d bytes", f, len(rb.GetRecords()), len(rb.GetRecordsData()))
		}
		out, err := batch.Records(rb)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, out, recs)
	}
}

func TestProduceStreamAcksNone(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "fire", 1, nil)
	s, err := n.Producer.ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := s.Send(&sluicev1.ProduceStreamRequest{CorrelationId: uint64(i), Request: &sluicev1.ProduceRequest{
			Topic: "fire", Acks: sluicev1.Acks_ACKS_NONE, Batch: &sluicev1.RecordBatch{Records: records(1, "f")}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		r, err := s.Recv()
		if err != nil || r.GetCorrelationId() != uint64(i) || r.GetResponse().GetBaseOffset() != -1 {
			t.Fatalf("response %d: %v %v", i, r, err)
		}
	}
	var got int
	eventuallyT(t, func() bool {
		got = 0
		for _, b := range fetchAll(t, n, "fire", 0, 0, 0) {
			got += len(b.GetRecords())
		}
		return got == 20
	})
}

// eventuallyT polls cond; the deadline only guards against a hang.
func eventuallyT(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedBuffer is a log sink safe for the node's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A Consume stream the client cancels ends with code Canceled, logged below
// ERROR, not as an Unknown failure of the node.
func TestConsumeCanceledByClientIsNotAnError(t *testing.T) {
	var logged lockedBuffer
	cfg := servertest.Config(t.TempDir())
	cfg.Logger = slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := servertest.Start(t, cfg)
	createTopic(t, n, "cancel", 1, nil)
	c := openConsume(t, n, n.Consumer)
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{Topic: "cancel"}}})
	c.barrier() // the server is inside the stream's loop
	c.cancel()
	ctx := ctxT(t)
	for {
		for line := range strings.Lines(logged.String()) {
			if !strings.Contains(line, `"grpc.method":"Consume"`) || !strings.Contains(line, `"grpc.code"`) {
				continue
			}
			if !strings.Contains(line, `"grpc.code":"Canceled"`) || strings.Contains(line, `"level":"ERROR"`) {
				t.Fatalf("a canceled stream is logged as %s", line)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the end of the stream was never logged:\n%s", logged.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
