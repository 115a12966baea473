package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	"github.com/sluicehq/sluice/cmd/sluice/cli/bench/hist"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

type produceOptions struct {
	topic          string
	records        int64
	recordSize     int
	rate           float64
	partitions     int32
	rf             int32
	acks           string
	compression    string
	producers      int
	sync           bool
	batchBytes     int
	inFlight       int
	noProgressLine bool
}

func newProduce(g *app.Globals) *cobra.Command {
	var o produceOptions
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records as fast as allowed and report throughput and latency",
		Long: `Produce --records records of --record-size bytes to a topic (created with
--partitions if missing), from --producers concurrent producers, at most --rate records/s
in total. Each producer pipelines batches of about --batch-bytes, up to --in-flight
unacknowledged batches at a time; latency is measured per record, from the moment its
batch is built until it is acknowledged.

With --sync each producer sends one record at a time and waits for its acknowledgement:
the latency of a single durable write.

A progress line is printed every second and a summary at the end: records/s, MB/s
(10^6 bytes of record values per second) and latency avg/p50/p95/p99/p99.9/max.`,
		Example: `  sluice bench produce --records 200000 --record-size 1024
  sluice bench produce --sync --records 2000 --format json
  sluice bench produce --partitions 4 --producers 4 --compression zstd --rate 50000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProduce(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.topic, "topic", "t", DefaultTopic, "topic to produce to (created if missing)")
	f.Int64Var(&o.records, "records", 100000, "records to produce in total")
	f.IntVar(&o.recordSize, "record-size", 1024, "bytes of each record's value")
	f.Float64Var(&o.rate, "rate", 0, "records per second over all producers (0 = unlimited)")
	f.Int32Var(&o.partitions, "partitions", 1, "partitions when the topic is created")
	f.Int32Var(&o.rf, "replication-factor", 0, "replication factor when the topic is created (0 = server default)")
	f.StringVar(&o.acks, "acks", "all", "acknowledgement: 0, 1 or all")
	f.StringVar(&o.compression, "compression", "none", "compression: none, gzip, snappy, lz4 or zstd")
	f.IntVar(&o.producers, "producers", 1, "concurrent producers (each with its own stream)")
	f.BoolVar(&o.sync, "sync", false, "send one record at a time and wait for each acknowledgement")
	f.IntVar(&o.batchBytes, "batch-bytes", 256<<10, "target bytes of record values per batch")
	f.IntVar(&o.inFlight, "in-flight", 8, "unacknowledged batches per producer")
	return cmd
}

func runProduce(ctx context.Context, g *app.Globals, o produceOptions) error {
	if o.records <= 0 || o.recordSize < 0 || o.producers <= 0 || o.inFlight <= 0 {
		return errors.New("--records, --producers and --in-flight must be positive, --record-size not negative")
	}
	acks, err := app.ParseAcks(o.acks)
	if err != nil {
		return err
	}
	comp, err := app.ParseCompression(o.compression)
	if err != nil {
		return err
	}
	nparts, err := ensureTopic(ctx, g, o.topic, o.partitions, o.rf)
	if err != nil {
		return err
	}
	conn, err := g.Conn()
	if err != nil {
		return err
	}
	client := sluicev1.NewProducerServiceClient(conn)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := &meter{lat: hist.NewRecorder(), cancel: cancel}
	progress := g.Stdout
	if g.JSON() {
		progress = g.Stderr
	}
	mode := "produce"
	if o.sync {
		mode = "produce-sync"
	}
	fmt.Fprintf(progress, "%s: %d records of %d bytes to %q (partitions: %d), acks=%s, compression=%s, %d producers\n",
		mode, o.records, o.recordSize, o.topic, nparts, o.acks, o.compression, o.producers)

	start := time.Now()
	lim := &limiter{rate: o.rate, start: start}
	rctx, stopReport := context.WithCancel(ctx)
	reportDone := make(chan struct{})
	go func() { defer close(reportDone); m.report(rctx, progress, start, o.records) }()

	done := make(chan struct{}, o.producers)
	for i := 0; i < o.producers; i++ {
		quota := o.records / int64(o.producers)
		if int64(i) < o.records%int64(o.producers) {
			quota++
		}
		w := &worker{
			o: o, m: m, lim: lim, client: client, acks: acks, comp: comp,
			topic: o.topic, partitions: nparts, quota: quota,
			value: payload(o.recordSize, uint64(i+1)), firstPart: int32(i) % nparts,
		}
		go func() {
			defer func() { done <- struct{}{} }()
			var err error
			if o.sync {
				err = w.runSync(ctx)
			} else {
				err = w.runAsync(ctx)
			}
			if err != nil {
				m.fail(err)
			}
		}()
	}
	for i := 0; i < o.producers; i++ {
		<-done
	}
	elapsed := time.Since(start)
	stopReport()
	<-reportDone
	s := m.summary(mode, o.topic, elapsed)
	if err := printSummary(g, s); err != nil {
		return err
	}
	if m.err != nil && !errors.Is(m.err, context.Canceled) {
		return m.err
	}
	return nil
}

// worker is one producer of a bench run.
type worker struct {
	o          produceOptions
	m          *meter
	lim        *limiter
	client     sluicev1.ProducerServiceClient
	acks       sluicev1.Acks
	comp       sluicev1.Compression
	topic      string
	partitions int32
	quota      int64
	value      []byte
	firstPart  int32
}

func (w *worker) records(n int) []*sluicev1.Record {
	now := time.Now().UnixMilli()
	recs := make([]*sluicev1.Record, n)
	for i := range recs {
		recs[i] = &sluicev1.Record{Value: w.value, TimestampMs: now}
	}
	return recs
}

func (w *worker) batch(n int) (*sluicev1.RecordBatch, error) {
	recs := w.records(n)
	if w.comp == sluicev1.Compression_COMPRESSION_NONE {
		return &sluicev1.RecordBatch{Records: recs, RecordCount: int32(n)}, nil
	}
	return batch.Encode(recs, w.comp)
}

// runSync produces one record at a time, waiting for each acknowledgement.
func (w *worker) runSync(ctx context.Context) error {
	part := w.firstPart
	for sent := int64(0); sent < w.quota; sent++ {
		if err := w.lim.wait(ctx, 1); err != nil {
			return err
		}
		b, err := w.batch(1)
		if err != nil {
			return err
		}
		t0 := time.Now()
		_, err = w.client.Produce(ctx, &sluicev1.ProduceRequest{Topic: w.topic, Partition: proto.Int32(part), Acks: w.acks, Batch: b})
		if err != nil {
			return err
		}
		w.m.lat.Record(time.Since(t0))
		w.m.records.Add(1)
		w.m.bytes.Add(int64(len(w.value)))
		part = (part + 1) % w.partitions
	}
	return nil
}

type inflight struct {
	sent    time.Time
	records int
}

// runAsync pipelines batches on one ProduceStream.
func (w *worker) runAsync(ctx context.Context) error {
	stream, err := w.client.ProduceStream(ctx)
	if err != nil {
		return err
	}
	per := max(1, w.o.batchBytes/max(1, w.o.recordSize))
	pending := make(chan inflight, w.o.inFlight) // in send order; responses come in the same order
	recvErr := make(chan error, 1)
	recvDone := make(chan struct{})
	go func() { // owned by runAsync, which waits for it below
		defer close(recvDone)
		for {
			resp, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				recvErr <- err
				return
			}
			f := <-pending
			if e := resp.GetError(); e != nil {
				recvErr <- app.ReasonOf(e)
				return
			}
			w.m.lat.RecordN(time.Since(f.sent), f.records)
			w.m.records.Add(int64(f.records))
			w.m.bytes.Add(int64(f.records) * int64(len(w.value)))
		}
	}()
	part := w.firstPart
	var id uint64
	var sendErr error
	for sent := int64(0); sent < w.quota; {
		n := int(min(int64(per), w.quota-sent))
		if sendErr = w.lim.wait(ctx, int64(n)); sendErr != nil {
			break
		}
		b, err := w.batch(n)
		if err != nil {
			sendErr = err
			break
		}
		select {
		case pending <- inflight{sent: time.Now(), records: n}:
		case <-recvDone:
			sendErr = io.EOF // the receiver has the reason
		case <-ctx.Done():
			sendErr = ctx.Err()
		}
		if sendErr != nil {
			break
		}
		id++
		req := &sluicev1.ProduceRequest{Topic: w.topic, Partition: proto.Int32(part), Acks: w.acks, Batch: b}
		if sendErr = stream.Send(&sluicev1.ProduceStreamRequest{Request: req, CorrelationId: id}); sendErr != nil {
			break // Recv reports the stream's status
		}
		sent += int64(n)
		part = (part + 1) % w.partitions
	}
	if err := stream.CloseSend(); err != nil && sendErr == nil {
		sendErr = err
	}
	err = <-recvErr
	if err == nil && sendErr != nil && !errors.Is(sendErr, io.EOF) {
		err = sendErr
	}
	return err
}
