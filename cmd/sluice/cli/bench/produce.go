package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/clients"
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
	partitionsSet  bool
	rf             int32
	acks           string
	compression    string
	producers      int
	sync           bool
	batchBytes     int
	inFlight       int
	noProgressLine bool
	inProcess      inProcessOptions
}

func newProduce(g *app.Globals) *cobra.Command {
	var o produceOptions
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records as fast as allowed and report throughput and latency",
		Long: `Produce --records records of --record-size bytes to a topic (created with
--partitions if missing), from --producers concurrent producers, at most --rate records/s
in total. Each producer is a client library Producer (package clients): it batches
records per partition up to --batch-bytes (unkeyed records stick to one partition per
batch), keeps up to --in-flight batches per partition unacknowledged, and sends to the
partition leaders. Latency is measured per record, from the moment it is handed to the
producer until it is acknowledged, so it includes time spent waiting in a batch.

With --sync each producer sends one record at a time and waits for its acknowledgement:
the latency of a single durable write.

A progress line is printed every second and a summary at the end: records/s, MB/s
(10^6 bytes of record values per second) and latency avg/p50/p95/p99/p99.9/max.`,
		Example: `  sluice bench produce --records 200000 --record-size 1024
  sluice bench produce --sync --records 2000 --format json
  sluice bench produce --sync --in-process --records 3000
  sluice bench produce --partitions 4 --producers 4 --compression zstd --rate 50000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.partitionsSet = cmd.Flags().Changed("partitions")
			return o.inProcess.run(g, func() error { return runProduce(cmd.Context(), g, o) })
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
	f.IntVar(&o.producers, "producers", 1, "concurrent producers (each with its own connections)")
	f.BoolVar(&o.sync, "sync", false, "send one record at a time and wait for each acknowledgement")
	f.IntVar(&o.batchBytes, "batch-bytes", 1<<20, "largest batch in bytes")
	f.IntVar(&o.inFlight, "in-flight", 5, "unacknowledged batches per partition and producer")
	o.inProcess.addFlags(f)
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
	nparts, err := ensureTopic(ctx, g, o.topic, o.partitions, o.rf, o.partitionsSet)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := &meter{lat: hist.NewRecorder(), cancel: cancel}
	progress := progressWriter(g)
	mode := "produce"
	if o.sync {
		mode = "produce-sync"
	}
	fmt.Fprintf(progress, "%s: %d records of %d bytes to %q (partitions: %d), acks=%s, compression=%s, %d producers\n",
		mode, o.records, o.recordSize, o.topic, nparts, o.acks, o.compression, o.producers)

	stopProfile, err := profile()
	if err != nil {
		return err
	}
	defer stopProfile()
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
			o: o, m: m, lim: lim, g: g, acks: acks, comp: comp,
			topic: o.topic, quota: quota, value: payload(o.recordSize, uint64(i+1)),
		}
		go func() {
			defer func() { done <- struct{}{} }()
			if err := w.run(ctx); err != nil {
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

// worker is one producer of a bench run: a clients.Producer of its own.
type worker struct {
	o     produceOptions
	m     *meter
	lim   *limiter
	g     *app.Globals
	acks  sluicev1.Acks
	comp  sluicev1.Compression
	topic string
	quota int64
	value []byte
}

func (w *worker) producer() (*clients.Producer, error) {
	opts := []clients.ProducerOpt{
		clients.Brokers(w.g.BrokerList()...),
		clients.DialOptions(app.ClientDialOptions()...),
		clients.Acks(w.acks),
		clients.Compression(w.comp),
		clients.MaxBatchBytes(w.o.batchBytes),
		clients.MaxInflightPerPartition(w.o.inFlight),
		clients.MaxBufferedRecords(max(10000, 4*w.o.inFlight*max(1, w.o.batchBytes/max(1, w.o.recordSize)))),
	}
	if w.acks != sluicev1.Acks_ACKS_ALL {
		opts = append(opts, clients.DisableIdempotence())
	}
	if w.o.sync {
		opts = append(opts, clients.Linger(0))
	}
	return clients.NewProducer(opts...)
}

// run produces the worker's quota: pipelined, or one record at a time with --sync.
func (w *worker) run(ctx context.Context) error {
	p, err := w.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	size := int64(len(w.value))
	// Records are allocated in slabs: the producer keeps each until it is
	// acknowledged, and one allocation per record cost the client more than
	// encoding it.
	var slab []clients.Record
	for sent := int64(0); sent < w.quota; sent++ {
		if err := w.lim.wait(ctx, 1); err != nil {
			return err
		}
		if len(slab) == 0 {
			slab = make([]clients.Record, min(w.quota-sent, 256))
		}
		r := &slab[0]
		slab = slab[1:]
		*r = clients.Record{Topic: w.topic, Value: w.value, Timestamp: time.Now()}
		t0 := time.Now()
		if w.o.sync {
			if _, err := p.ProduceSync(ctx, r).First(); err != nil {
				return err
			}
			w.m.lat.Record(time.Since(t0))
			w.m.records.Add(1)
			w.m.bytes.Add(size)
			continue
		}
		p.Produce(ctx, r, func(_ *clients.Record, err error) {
			if err != nil {
				w.m.fail(err)
				return
			}
			w.m.lat.Record(time.Since(t0))
			w.m.records.Add(1)
			w.m.bytes.Add(size)
		})
	}
	return p.Flush(ctx)
}
