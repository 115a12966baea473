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

type consumeOptions struct {
	topic    string
	records  int64
	maxBytes int32
}

func newConsume(g *app.Globals) *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Read a topic from the beginning and report throughput",
		Long: `Read a topic from the earliest offset of every partition until --records records
have been read (default: everything up to the high watermarks at the start), with fetches
of up to --max-bytes. Reads with a client library Consumer (package clients). Reports records/s, MB/s (10^6
bytes of record keys and values per second) and the latency of each poll.`,
		Example: `  sluice bench produce --records 200000 && sluice bench consume`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConsume(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.topic, "topic", "t", DefaultTopic, "topic to read")
	f.Int64Var(&o.records, "records", 0, "records to read (0 = up to the end at the start)")
	f.Int32Var(&o.maxBytes, "max-bytes", 16<<20, "bytes per fetch and per partition")
	return cmd
}

func runConsume(ctx context.Context, g *app.Globals, o consumeOptions) error {
	conn, err := g.Conn()
	if err != nil {
		return err
	}
	admin := sluicev1.NewAdminServiceClient(conn)
	rctx, cancel := g.Request(ctx)
	earliest, err := admin.ListOffsets(rctx, &sluicev1.ListOffsetsRequest{Topic: o.topic,
		Spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}}})
	cancel()
	if err != nil {
		return err
	}
	next := map[int32]int64{}
	target := o.records
	var parts []int32
	for _, po := range earliest.GetOffsets() {
		if e := po.GetError(); e != nil {
			return fmt.Errorf("partition %d: %w", po.GetPartition(), app.ReasonOf(e))
		}
		parts = append(parts, po.GetPartition())
		next[po.GetPartition()] = po.GetOffset()
		if o.records == 0 {
			target += po.GetHighWatermark() - po.GetOffset()
		}
	}
	if target <= 0 {
		return fmt.Errorf("topic %q is empty: produce first (sluice bench produce --topic %s)", o.topic, o.topic)
	}

	ctx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	m := &meter{lat: hist.NewRecorder(), cancel: cancelRun}
	progress := g.Stdout
	if g.JSON() {
		progress = g.Stderr
	}
	fmt.Fprintf(progress, "consume: %d records from %q (partitions: %d)\n", target, o.topic, len(parts))
	stopProfile, err := profile()
	if err != nil {
		return err
	}
	defer stopProfile()
	start := time.Now()
	rctx, stopReport := context.WithCancel(ctx)
	reportDone := make(chan struct{})
	go func() { defer close(reportDone); m.report(rctx, progress, start, target) }()

	assign := map[int32]clients.Offset{}
	for p, off := range next {
		assign[p] = clients.At(off)
	}
	c, err := clients.NewConsumer(clients.Brokers(g.BrokerList()...), clients.DialOptions(app.ClientDialOptions()...),
		clients.FetchMaxBytes(o.maxBytes), clients.FetchMaxPartitionBytes(o.maxBytes))
	if err != nil {
		stopReport()
		<-reportDone
		return err
	}
	defer c.Close()
	c.Assign(o.topic, assign)
	for m.records.Load() < target {
		t0 := time.Now()
		recs, err := c.Poll(ctx)
		if err != nil {
			m.fail(err)
			break
		}
		m.lat.Record(time.Since(t0))
		var bytes int64
		for _, r := range recs {
			bytes += int64(len(r.Key) + len(r.Value))
		}
		m.records.Add(int64(len(recs)))
		m.bytes.Add(bytes)
	}
	elapsed := time.Since(start)
	stopReport()
	<-reportDone
	if err := printSummary(g, m.summary("consume", o.topic, elapsed)); err != nil {
		return err
	}
	if m.err != nil && !errors.Is(m.err, context.Canceled) {
		return m.err
	}
	return nil
}
