package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/clients"
	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	"github.com/sluicehq/sluice/cmd/sluice/cli/bench/hist"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

type e2eOptions struct {
	topic         string
	rate          float64
	duration      time.Duration
	recordSize    int
	partitions    int32
	partitionsSet bool
	rf            int32
	linger        time.Duration
}

func newE2E(g *app.Globals) *cobra.Command {
	var o e2eOptions
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "Measure end-to-end latency: from produce to a consumer holding the record",
		Long: `Produce --rate records/s of --record-size bytes for --duration (acks=all, idempotent,
--linger) while a consumer in the same process reads every partition
from the end. The latency of a record is the time from handing it to the producer until
the consumer's Poll returns it (the send time travels in the first 8 bytes of the value;
one clock, no skew). Reports the latency distribution of every record read.`,
		Example: `  sluice bench e2e --rate 5000 --duration 10s --partitions 6 --replication-factor 3`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.partitionsSet = cmd.Flags().Changed("partitions")
			return runE2E(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.topic, "topic", "t", DefaultTopic+"-e2e", "topic to use (created if missing)")
	f.Float64Var(&o.rate, "rate", 5000, "records per second")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to produce")
	f.IntVar(&o.recordSize, "record-size", 1024, "bytes of each record's value (at least 8)")
	f.Int32Var(&o.partitions, "partitions", 1, "partitions when the topic is created")
	f.Int32Var(&o.rf, "replication-factor", 0, "replication factor when the topic is created (0 = server default)")
	f.DurationVar(&o.linger, "linger", 0, "how long the producer waits to fill a batch (0: send at once; batches still form while others are in flight)")
	return cmd
}

func runE2E(ctx context.Context, g *app.Globals, o e2eOptions) error {
	if o.rate <= 0 || o.duration <= 0 || o.recordSize < 8 {
		return errors.New("--rate and --duration must be positive, --record-size at least 8")
	}
	nparts, err := ensureTopic(ctx, g, o.topic, o.partitions, o.rf, o.partitionsSet)
	if err != nil {
		return err
	}
	conn, err := g.Conn()
	if err != nil {
		return err
	}
	rctx, cancel := g.Request(ctx)
	latest, err := sluicev1.NewAdminServiceClient(conn).ListOffsets(rctx, &sluicev1.ListOffsetsRequest{Topic: o.topic,
		Spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}})
	cancel()
	if err != nil {
		return err
	}
	assign := map[int32]clients.Offset{}
	for _, po := range latest.GetOffsets() {
		assign[po.GetPartition()] = clients.At(po.GetOffset())
	}
	c, err := clients.NewConsumer(clients.Brokers(g.BrokerList()...), clients.DialOptions(app.ClientDialOptions()...),
		clients.FetchMaxWait(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	c.Assign(o.topic, assign)
	p, err := clients.NewProducer(clients.Brokers(g.BrokerList()...), clients.DialOptions(app.ClientDialOptions()...),
		clients.Linger(o.linger))
	if err != nil {
		return err
	}
	defer p.Close()

	ctx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	m := &meter{lat: hist.NewRecorder(), cancel: cancelRun}
	progress := g.Stdout
	if g.JSON() {
		progress = g.Stderr
	}
	total := int64(o.rate * o.duration.Seconds())
	fmt.Fprintf(progress, "e2e: %d records of %d bytes at %.0f records/s to %q (partitions: %d)\n",
		total, o.recordSize, o.rate, o.topic, nparts)
	stopProfile, err := profile()
	if err != nil {
		return err
	}
	defer stopProfile()

	// The consumer: every record read is one latency sample.
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for m.records.Load() < total {
			recs, err := c.Poll(ctx)
			now := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					m.fail(err)
				}
				return
			}
			for _, r := range recs {
				if len(r.Value) < 8 {
					continue
				}
				sent := int64(binary.BigEndian.Uint64(r.Value))
				m.lat.Record(now.Sub(time.Unix(0, sent)))
				m.bytes.Add(int64(len(r.Value)))
			}
			m.records.Add(int64(len(recs)))
		}
	}()

	start := time.Now()
	rctx, stopReport := context.WithCancel(ctx)
	reportDone := make(chan struct{})
	go func() { defer close(reportDone); m.report(rctx, progress, start, total) }()
	lim := &limiter{rate: o.rate, start: start}
	base := payload(o.recordSize, 1)
	for i := int64(0); i < total && ctx.Err() == nil; i++ {
		if err := lim.wait(ctx, 1); err != nil {
			break
		}
		v := make([]byte, len(base))
		copy(v, base)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		p.Produce(ctx, &clients.Record{Topic: o.topic, Value: v}, func(_ *clients.Record, err error) {
			if err != nil {
				m.fail(err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		m.fail(err)
	}
	// Wait for the consumer to read everything (bounded: a lost record
	// must not hang the run).
	select {
	case <-consumed:
	case <-time.After(30 * time.Second):
		m.fail(fmt.Errorf("consumer read %d of %d records", m.records.Load(), total))
	case <-ctx.Done():
	}
	cancelRun()
	<-consumed
	elapsed := time.Since(start)
	stopReport()
	<-reportDone
	if err := printSummary(g, m.summary("e2e", o.topic, elapsed)); err != nil {
		return err
	}
	if m.err != nil && !errors.Is(m.err, context.Canceled) {
		return m.err
	}
	return nil
}
