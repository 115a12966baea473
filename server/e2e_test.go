package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startNode(t *testing.T) *servertest.Node {
	return servertest.Start(t, servertest.Config(t.TempDir()))
}

func createTopic(t *testing.T, n *servertest.Node, name string, parts int32, cfg map[string]string) *sluicev1.TopicDescription {
	t.Helper()
	resp, err := n.Admin.CreateTopic(ctxT(t), &sluicev1.CreateTopicRequest{Name: name, Partitions: parts, Configs: cfg})
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return resp.GetTopic()
}

func records(n int, prefix string) []*sluicev1.Record {
	out := make([]*sluicev1.Record, n)
	for i := range out {
		out[i] = &sluicev1.Record{
			Key:     []byte(fmt.Sprintf("%s-k%d", prefix, i)),
			Value:   []byte(fmt.Sprintf("%s-v%d", prefix, i)),
			Headers: []*sluicev1.RecordHeader{{Key: "h", Value: []byte{byte(i)}}},
		}
	}
	return out
}

func produce(t *testing.T, n *servertest.Node, topic string, part int32, recs []*sluicev1.Record) *sluicev1.ProduceResponse {
	t.Helper()
	ctx := ctxT(t)
	for {
		resp, err := n.Producer.Produce(ctx, &sluicev1.ProduceRequest{
			Topic: topic, Partition: proto.Int32(part), Batch: &sluicev1.RecordBatch{Records: recs},
		})
		if err == nil {
			return resp
		}
		// A partition of a topic just created may still be opening or
		// electing: the answer says nothing was written, so send again, as
		// a client would.
		if code, ei := errorInfo(t, err); code == codes.Unavailable && ctx.Err() == nil &&
			(ei.GetReason() == "LEADER_NOT_AVAILABLE" || ei.GetReason() == "NOT_LEADER") {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		t.Fatalf("produce: %v", err)
	}
}

// fetchAll reads a partition from offset to its high watermark.
func fetchAll(t *testing.T, n *servertest.Node, topic string, part int32, from int64, format sluicev1.RecordFormat) []*sluicev1.RecordBatch {
	t.Helper()
	var out []*sluicev1.RecordBatch
	off := from
	for {
		resp, err := n.Consumer.Fetch(ctxT(t), &sluicev1.FetchRequest{
			Topic: topic, Partitions: []*sluicev1.FetchPosition{{Partition: part, Offset: off}}, RecordFormat: format,
		})
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fp := resp.GetPartitions()[0]
		if fp.GetError() != nil {
			t.Fatalf("fetch partition: %v", fp.GetError())
		}
		if len(fp.GetBatches()) == 0 {
			return out
		}
		for _, b := range fp.GetBatches() {
			out = append(out, b)
			off = b.GetBaseOffset() + int64(b.GetRecordCount())
		}
	}
}

// errorInfo returns the code and ErrorInfo of a failed call.
func errorInfo(t *testing.T, err error) (codes.Code, *errdetails.ErrorInfo) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("not a status error: %v", err)
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			if ei.GetDomain() != "sluice.v1" {
				t.Fatalf("domain %q", ei.GetDomain())
			}
			return st.Code(), ei
		}
	}
	t.Fatalf("no ErrorInfo in %v", err)
	return 0, nil
}

func wantError(t *testing.T, err error, code codes.Code, reason string) *errdetails.ErrorInfo {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s/%s, got success", code, reason)
	}
	c, ei := errorInfo(t, err)
	if c != code || ei.GetReason() != reason {
		t.Fatalf("want %s/%s, got %s/%s: %v", code, reason, c, ei.GetReason(), err)
	}
	return ei
}

func TestProduceFetchRoundTrip(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "events", 2, nil)
	r1 := produce(t, n, "events", 1, records(3, "a"))
	r2 := produce(t, n, "events", 1, records(2, "b"))
	if r1.GetBaseOffset() != 0 || r2.GetBaseOffset() != 3 || r1.GetLogAppendTimeMs() != -1 {
		t.Fatalf("offsets %v %v", r1, r2)
	}
	bs := fetchAll(t, n, "events", 1, 0, sluicev1.RecordFormat_RECORD_FORMAT_UNSPECIFIED)
	if len(bs) != 2 || bs[1].GetBaseOffset() != 3 {
		t.Fatalf("batches %v", bs)
	}
	want := append(records(3, "a"), records(2, "b")...)
	var got []*sluicev1.Record
	for _, b := range bs {
		got = append(got, b.GetRecords()...)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records", len(got))
	}
	for i := range want {
		if string(got[i].GetKey()) != string(want[i].GetKey()) || string(got[i].GetValue()) != string(want[i].GetValue()) ||
			len(got[i].GetHeaders()) != 1 || got[i].GetHeaders()[0].GetValue()[0] != want[i].GetHeaders()[0].GetValue()[0] {
			t.Fatalf("record %d: %v want %v", i, got[i], want[i])
		}
		if got[i].GetTimestampMs() <= 0 {
			t.Fatalf("record %d has no timestamp", i)
		}
	}
	// Partition 0 is empty; fetching past the end is out of range.
	if bs := fetchAll(t, n, "events", 0, 0, 0); len(bs) != 0 {
		t.Fatalf("partition 0: %v", bs)
	}
	resp, err := n.Consumer.Fetch(ctxT(t), &sluicev1.FetchRequest{Topic: "events", Partitions: []*sluicev1.FetchPosition{{Partition: 1, Offset: 99}}})
	if err != nil {
		t.Fatal(err)
	}
	e := resp.GetPartitions()[0].GetError()
	if e.GetReason() != sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE || e.GetMetadata()["earliest"] != "0" || e.GetMetadata()["latest"] != "5" {
		t.Fatalf("out of range: %v", e)
	}
	_, err = n.Producer.Produce(ctxT(t), &sluicev1.ProduceRequest{Topic: "nope", Batch: &sluicev1.RecordBatch{Records: records(1, "x")}})
	ei := wantError(t, err, codes.NotFound, "UNKNOWN_TOPIC")
	if ei.GetMetadata()["topic"] != "nope" {
		t.Fatalf("metadata %v", ei.GetMetadata())
	}
	if !errors.Is(ctxT(t).Err(), nil) {
		t.Fatal("context")
	}
}
