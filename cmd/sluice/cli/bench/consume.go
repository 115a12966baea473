package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/clients"
	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	"github.com/sluicehq/sluice/cmd/sluice/cli/bench/hist"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

type consumeOptions struct {
	topic     string
	records   int64
	maxBytes  int32
	partMax   int32
	consumers int
	reuse     bool
}

func newConsume(g *app.Globals) *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Read a topic from the beginning and report throughput",
		Long: `Read a topic from the earliest offset of every partition until --records records
have been read (default: everything up to the high watermarks at the start), with fetches
of up to --max-bytes and --partition-max-bytes per partition (by default the client
library's, like Kafka's consumer: 16 MiB and 1 MiB). Reads with --consumers client library Consumers (package clients)
in parallel, the partitions dealt out among them, as Kafka's consumer-perf-test does with
several threads. Reports records/s, MB/s (10^6 bytes of record keys and values per
second) and the latency of each poll.

The bench looks at each Poll's records before it polls again, so its Consumers read
with ReuseRecordMemory (each Poll's records are valid until the next one) unless
--reuse-records=false.`,
		Example: `  sluice bench produce --records 200000 && sluice bench consume`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConsume(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.topic, "topic", "t", DefaultTopic, "topic to read")
	f.Int64Var(&o.records, "records", 0, "records to read (0 = up to the end at the start)")
	f.Int32Var(&o.maxBytes, "max-bytes", 0, "bytes per fetch response (0: the client library's default, 16 MiB)")
	f.Int32Var(&o.partMax, "partition-max-bytes", 0, "bytes per partition in a fetch (0: the client library's default, 1 MiB)")
	f.IntVar(&o.consumers, "consumers", 1, "Consumers reading in parallel, each with its own connections and a share of the partitions")
	f.BoolVar(&o.reuse, "reuse-records", true, "read each Poll into the memory of the previous Poll's records (clients.ReuseRecordMemory)")
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
	progress := progressWriter(g)
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

	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	n := max(1, min(o.consumers, len(parts)))
	assigns := make([]map[int32]clients.Offset, n)
	for i, p := range parts {
		if assigns[i%n] == nil {
			assigns[i%n] = map[int32]clients.Offset{}
		}
		assigns[i%n][p] = clients.At(next[p])
	}
	var wg sync.WaitGroup
	for _, assign := range assigns {
		opts := []clients.ConsumerOpt{clients.Brokers(g.BrokerList()...), clients.DialOptions(app.ClientDialOptions()...)}
		if o.maxBytes > 0 {
			opts = append(opts, clients.FetchMaxBytes(o.maxBytes))
		}
		if o.partMax > 0 {
			opts = append(opts, clients.FetchMaxPartitionBytes(o.partMax))
		}
		if o.reuse {
			opts = append(opts, clients.ReuseRecordMemory())
		}
		c, err := clients.NewConsumer(opts...)
		if err != nil {
			m.fail(err)
			break
		}
		c.Assign(o.topic, assign)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for m.records.Load() < target && ctx.Err() == nil {
				t0 := time.Now()
				recs, err := c.Poll(ctx)
				if err != nil {
					if ctx.Err() == nil {
						m.fail(err)
					}
					return
				}
				m.lat.Record(time.Since(t0))
				var bytes int64
				for _, r := range recs {
					bytes += int64(len(r.Key) + len(r.Value))
				}
				m.bytes.Add(bytes)
				if m.records.Add(int64(len(recs))) >= target {
					cancelRun() // the others stop polling
				}
			}
		}()
	}
	wg.Wait()
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
