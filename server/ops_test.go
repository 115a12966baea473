package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server/servertest"
)

func TestHealthReflectionAndHTTP(t *testing.T) {
	n := startNode(t)
	hc, err := healthpb.NewHealthClient(n.Conn).Check(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hc, err)
	}
	rs, err := reflectionpb.NewServerReflectionClient(n.Conn).ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for _, s := range rr.GetListServicesResponse().GetService() {
		services[s.GetName()] = true
	}
	for _, want := range []string{"sluice.v1.ProducerService", "sluice.v1.ConsumerService", "sluice.v1.AdminService",
		"sluice.v1.ClusterService", "sluice.v1.GroupService", "sluice.v1.TransactionService", "grpc.health.v1.Health"} {
		if !services[want] {
			t.Errorf("reflection does not list %s: %v", want, services)
		}
	}
	_ = rs.CloseSend()

	createTopic(t, n, "m", 1, nil)
	produce(t, n, "m", 0, records(3, "m"))
	fetchAll(t, n, "m", 0, 0, 0)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + n.Server.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		`sluice_topic_records_in_total{topic="m"} 3`,
		`sluice_topic_records_out_total{topic="m"} 3`,
		`sluice_topic_bytes_in_total{topic="m"}`,
		`sluice_partitions 1`,
		`sluice_log_size_bytes{partition="0",topic="m"}`,
		`sluice_produce_latency_seconds_bucket`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Produce"`,
		`grpc_server_handling_seconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRestartKeepsTopicsAndRecords(t *testing.T) {
	n := servertest.Start(t, servertest.Config(t.TempDir()))
	createTopic(t, n, "keep", 3, map[string]string{"retention.ms": "-1"})
	createTopic(t, n, "drop", 1, nil)
	for p := range int32(3) {
		produce(t, n, "keep", p, records(int(p)+1, "k"))
	}
	if _, err := n.Admin.DeleteTopic(ctxT(t), &sluicev1.DeleteTopicRequest{Name: "drop"}); err != nil {
		t.Fatal(err)
	}
	md1, err := n.Cluster.DescribeCluster(ctxT(t), &sluicev1.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n = n.Restart(t)
	md2, err := n.Cluster.DescribeCluster(ctxT(t), &sluicev1.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if md2.GetClusterId() != md1.GetClusterId() || md2.GetClusterId() == "" || md2.GetPartitionCount() != 3 || md2.GetControllerId() != 1 {
		t.Fatalf("cluster after restart: %v (before %v)", md2, md1)
	}
	lt, err := n.Admin.ListTopics(ctxT(t), &sluicev1.ListTopicsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.GetTopics()) != 1 || lt.GetTopics()[0].GetName() != "keep" || lt.GetTopics()[0].GetPartitions() != 3 {
		t.Fatalf("topics after restart: %v", lt)
	}
	for p := range int32(3) {
		var got []*sluicev1.Record
		for _, b := range fetchAll(t, n, "keep", p, 0, 0) {
			got = append(got, b.GetRecords()...)
		}
		sameRecords(t, got, records(int(p)+1, "k"))
	}
	// And the partitions take new records after the old ones.
	if r := produce(t, n, "keep", 2, records(1, "after")); r.GetBaseOffset() != 3 {
		t.Fatalf("offset after restart %d", r.GetBaseOffset())
	}
}

func TestAdminOperations(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	created := createTopic(t, n, "adm", 2, map[string]string{"retention.bytes": "1048576"})
	if created.GetTopicId() == "" || len(created.GetPartitions()) != 2 || created.GetPartitions()[0].GetLeader() != 1 {
		t.Fatalf("created %v", created)
	}
	cfg := map[string]*sluicev1.TopicConfig{}
	for _, c := range created.GetConfigs() {
		cfg[c.GetKey()] = c
	}
	if c := cfg["retention.bytes"]; c.GetValue() != "1048576" || c.GetIsDefault() {
		t.Fatalf("retention.bytes %v", c)
	}
	if c := cfg["retention.ms"]; c.GetValue() != "604800000" || !c.GetIsDefault() || len(cfg) != 8 {
		t.Fatalf("configs %v", cfg)
	}
	// Validate-only creates nothing.
	if _, err := n.Admin.CreateTopic(ctx, &sluicev1.CreateTopicRequest{Name: "dry", ValidateOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Admin.DescribeTopic(ctx, &sluicev1.DescribeTopicRequest{Name: "dry"}); err == nil {
		t.Fatal("validate-only created the topic")
	}
	ap, err := n.Admin.AddPartitions(ctx, &sluicev1.AddPartitionsRequest{Name: "adm", TotalPartitions: 4})
	if err != nil || len(ap.GetTopic().GetPartitions()) != 4 {
		t.Fatalf("add partitions: %v %v", ap, err)
	}
	produce(t, n, "adm", 3, records(1, "p3"))
	ac, err := n.Admin.AlterTopicConfig(ctx, &sluicev1.AlterTopicConfigRequest{Name: "adm",
		Set: map[string]string{"message.timestamp.type": "LogAppendTime"}, Reset_: []string{"retention.bytes"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ac.GetConfigs() {
		if c.GetKey() == "retention.bytes" && !c.GetIsDefault() || c.GetKey() == "message.timestamp.type" && c.GetValue() != "LogAppendTime" {
			t.Fatalf("after alter: %v", c)
		}
	}
	if r := produce(t, n, "adm", 0, records(1, "lat")); r.GetLogAppendTimeMs() <= 0 {
		t.Fatalf("alter did not switch to log-append time: %v", r)
	}
	for range 4 {
		produce(t, n, "adm", 1, records(2, "d"))
	}
	dr, err := n.Admin.DeleteRecords(ctx, &sluicev1.DeleteRecordsRequest{Topic: "adm", BeforeOffsets: map[int32]int64{1: 4, 0: -1, 9: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(dr.GetPartitions()) != 3 || dr.GetPartitions()[0].GetLogStartOffset() != 1 || dr.GetPartitions()[1].GetLogStartOffset() != 4 ||
		dr.GetPartitions()[2].GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION {
		t.Fatalf("delete records: %v", dr)
	}
	resp, err := n.Consumer.Fetch(ctx, &sluicev1.FetchRequest{Topic: "adm", Partitions: []*sluicev1.FetchPosition{{Partition: 1, Offset: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.GetPartitions()[0].GetError(); e.GetReason() != sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE || e.GetMetadata()["earliest"] != "4" {
		t.Fatalf("fetch below the log start: %v", resp)
	}
	gm, err := n.Cluster.GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: []string{"adm", "unknown"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(gm.GetNodes()) != 1 || gm.GetNodes()[0].GetAddress() != n.Server.Addr() || !gm.GetNodes()[0].GetAlive() ||
		len(gm.GetTopics()) != 1 || len(gm.GetTopics()[0].GetPartitions()) != 4 || gm.GetTopics()[0].GetPartitions()[3].GetLeader() != 1 {
		t.Fatalf("metadata %v", gm)
	}
	ip1, err := n.Producer.InitProducer(ctx, &sluicev1.InitProducerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ip2, err := n.Producer.InitProducer(ctx, &sluicev1.InitProducerRequest{})
	if err != nil || ip2.GetProducerId() == ip1.GetProducerId() || ip1.GetProducerId() <= 0 {
		t.Fatalf("producer ids %v %v %v", ip1, ip2, err)
	}
	if _, err := n.Admin.DeleteTopic(ctx, &sluicev1.DeleteTopicRequest{Name: "adm"}); err != nil {
		t.Fatal(err)
	}
	_, err = n.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "adm", Batch: &sluicev1.RecordBatch{Records: records(1, "x")}})
	wantError(t, err, codes.NotFound, "UNKNOWN_TOPIC")
}

func TestIdempotentProduceAndAcks(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	createTopic(t, n, "idem", 1, nil)
	ip, err := n.Producer.InitProducer(ctx, &sluicev1.InitProducerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	req := func(seq int32) *sluicev1.ProduceRequest {
		return &sluicev1.ProduceRequest{Topic: "idem", Partition: proto.Int32(0), Batch: &sluicev1.RecordBatch{
			ProducerId: ip.GetProducerId(), ProducerEpoch: ip.GetProducerEpoch(), BaseSequence: seq, Records: records(2, "i")}}
	}
	r1, err := n.Producer.Produce(ctx, req(0))
	if err != nil {
		t.Fatal(err)
	}
	again, err := n.Producer.Produce(ctx, req(0))
	if err != nil || again.GetBaseOffset() != r1.GetBaseOffset() {
		t.Fatalf("retried batch: %v %v (first at %d)", again, err, r1.GetBaseOffset())
	}
	_, err = n.Producer.Produce(ctx, req(5))
	wantError(t, err, codes.FailedPrecondition, "OUT_OF_ORDER_SEQUENCE")
	if r, err := n.Producer.Produce(ctx, req(2)); err != nil || r.GetBaseOffset() != 2 {
		t.Fatalf("next batch: %v %v", r, err)
	}
	for _, acks := range []sluicev1.Acks{sluicev1.Acks_ACKS_NONE, sluicev1.Acks_ACKS_LEADER, sluicev1.Acks_ACKS_ALL} {
		r, err := n.Producer.Produce(ctx, &sluicev1.ProduceRequest{Topic: "idem", Acks: acks, Batch: &sluicev1.RecordBatch{Records: records(1, "a")}})
		if err != nil {
			t.Fatalf("%s: %v", acks, err)
		}
		if (acks == sluicev1.Acks_ACKS_NONE) != (r.GetBaseOffset() == -1) {
			t.Fatalf("%s: base offset %d", acks, r.GetBaseOffset())
		}
	}
	// All three arrive (acks=none included), in order.
	deadline := time.Now().Add(30 * time.Second)
	for {
		lo, err := n.Admin.ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: "idem"})
		if err != nil {
			t.Fatal(err)
		}
		if lo.GetOffsets()[0].GetOffset() == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("high watermark %d, want 7", lo.GetOffsets()[0].GetOffset())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShutdownEndsLongPollsAndStreams(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "bye", 1, nil)
	errs := make(chan error, 3)
	ps, err := n.Producer.ProduceStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Send(&sluicev1.ProduceStreamRequest{Request: &sluicev1.ProduceRequest{Topic: "bye", Batch: &sluicev1.RecordBatch{Records: records(1, "b")}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := ps.Recv(); err != nil || r.GetError() != nil {
		t.Fatalf("produce stream: %v %v", r, err)
	}
	go func() {
		_, err := ps.Recv()
		errs <- err
	}()
	go func() {
		_, err := n.Consumer.Fetch(context.Background(), &sluicev1.FetchRequest{Topic: "bye", MinBytes: 1, MaxWaitMs: 300_000,
			Partitions: []*sluicev1.FetchPosition{{}}})
		errs <- err
	}()
	s, err := n.Consumer.Consume(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{Topic: "bye"}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := s.Recv(); err != nil {
				errs <- err
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Server.Shutdown(ctx); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	for range 3 {
		<-errs // all ended (the fetch answers, the streams end UNAVAILABLE)
	}
}

func TestRetentionDeletesOldSegments(t *testing.T) {
	cfg := servertest.Config(t.TempDir())
	cfg.RetentionCheck = 20 * time.Millisecond
	n := servertest.Start(t, cfg)
	createTopic(t, n, "ret", 1, map[string]string{"segment.bytes": "4096", "retention.bytes": "8192"})
	for range 40 {
		recs := records(4, "r")
		for _, r := range recs {
			r.Value = make([]byte, 200)
		}
		produce(t, n, "ret", 0, recs)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := n.Admin.DescribeTopic(ctxT(t), &sluicev1.DescribeTopicRequest{Name: "ret"})
		if err != nil {
			t.Fatal(err)
		}
		p := d.GetTopic().GetPartitions()[0]
		if p.GetLogStartOffset() > 0 {
			if p.GetHighWatermark() != 160 {
				t.Fatalf("retention moved the high watermark: %v", p)
			}
			// What is left is readable from the start (which retention
			// may still be moving).
			resp, err := n.Consumer.Fetch(ctxT(t), &sluicev1.FetchRequest{Topic: "ret",
				Partitions: []*sluicev1.FetchPosition{{Offset: p.GetLogStartOffset()}}})
			if err != nil {
				t.Fatal(err)
			}
			fp := resp.GetPartitions()[0]
			if fp.GetError().GetReason() == sluicev1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE {
				continue
			}
			if fp.GetError() != nil || len(fp.GetBatches()) == 0 {
				t.Fatalf("nothing readable after retention: %v", fp)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention never ran: %v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSubscribeByTimestampAndSeek(t *testing.T) {
	n := startNode(t)
	createTopic(t, n, "ts", 1, nil)
	for i := range int64(4) {
		recs := records(1, "t")
		recs[0].TimestampMs = 1000 * (i + 1)
		produce(t, n, "ts", 0, recs)
	}
	c := openConsume(t, n, n.Consumer)
	c.credit(1 << 20)
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{
		Topic: "ts", Start: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_TimestampMs{TimestampMs: 2500}}}}})
	got := c.barrier()
	if len(got) != 2 || got[0].GetBatch().GetBatch().GetBaseOffset() != 2 {
		t.Fatalf("from timestamp 2500: %v", got)
	}
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Seek{Seek: &sluicev1.Seek{Topic: "ts",
		Position: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Offset{Offset: 1}}}}})
	got = c.barrier()
	if len(got) != 3 || got[0].GetBatch().GetBatch().GetBaseOffset() != 1 {
		t.Fatalf("after seek to 1: %v", got)
	}
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Seek{Seek: &sluicev1.Seek{Topic: "ts",
		Position: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_TimestampMs{TimestampMs: 99999}}}}})
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("timestamp after the last record: %v", got)
	}
	c.send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Seek{Seek: &sluicev1.Seek{Topic: "other",
		Position: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Earliest{Earliest: true}}}}})
	got = c.barrier()
	if len(got) != 1 || got[0].GetPartitionError().GetError().GetReason() != sluicev1.ErrorReason_ERROR_REASON_INVALID_REQUEST {
		t.Fatalf("seek of an unsubscribed partition: %v", got)
	}
}
