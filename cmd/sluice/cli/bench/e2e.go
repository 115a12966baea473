package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

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
	stream        bool
	fromFollower  bool
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
	f.BoolVar(&o.stream, "consume-stream", false, "read with Consume streams (the server pushes batches as the high watermark moves; one stream per partition leader) instead of the client library's Consumer (Fetch long polls)")
	f.BoolVar(&o.fromFollower, "from-follower", false, "with --consume-stream: attach each partition's stream to a follower replica instead of its leader (a follower learns the commit index one replication round later)")
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
	sp := newSplit()
	progress := progressWriter(g)
	total := int64(o.rate * o.duration.Seconds())
	fmt.Fprintf(progress, "e2e: %d records of %d bytes at %.0f records/s to %q (partitions: %d)\n",
		total, o.recordSize, o.rate, o.topic, nparts)
	stopProfile, err := profile()
	if err != nil {
		return err
	}
	defer stopProfile()

	// The consumer: every record read is one latency sample.
	sample := func(now time.Time, value []byte) {
		if len(value) < 8 {
			return
		}
		sent := int64(binary.BigEndian.Uint64(value))
		m.lat.Record(now.Sub(time.Unix(0, sent)))
		m.bytes.Add(int64(len(value)))
		sp.read(sent, now)
	}
	consumed := make(chan struct{})
	if o.stream {
		if err := streamConsume(ctx, g, m, o.topic, latest.GetOffsets(), total, o.fromFollower, sample, consumed); err != nil {
			return err
		}
	} else {
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
					sample(now, r.Value)
				}
				m.records.Add(int64(len(recs)))
			}
		}()
	}

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
		sent := time.Now().UnixNano()
		binary.BigEndian.PutUint64(v, uint64(sent))
		p.Produce(ctx, &clients.Record{Topic: o.topic, Value: v}, func(_ *clients.Record, err error) {
			if err != nil {
				m.fail(err)
				return
			}
			sp.acked(sent, time.Now())
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
	if !g.JSON() {
		sp.print(g.Stdout)
	}
	if m.err != nil && !errors.Is(m.err, context.Canceled) {
		return m.err
	}
	return nil
}

// streamConsume reads the partitions from the given offsets with one
// Consume stream per partition leader, granting back the credit each batch
// used, and closes done once total records arrived or ctx ended.
func streamConsume(ctx context.Context, g *app.Globals, m *meter, topic string, from []*sluicev1.PartitionOffset,
	total int64, fromFollower bool, sample func(time.Time, []byte), done chan<- struct{}) (err error) {
	conn, err := g.Conn()
	if err != nil {
		return err
	}
	md, err := sluicev1.NewClusterServiceClient(conn).GetMetadata(ctx, &sluicev1.GetMetadataRequest{Topics: []string{topic}})
	if err != nil {
		return err
	}
	addr := map[int32]string{}
	for _, n := range md.GetNodes() {
		addr[n.GetNodeId()] = n.GetAddress()
	}
	start := map[int32]int64{}
	for _, po := range from {
		start[po.GetPartition()] = po.GetOffset()
	}
	byNode := map[string][]int32{}
	for _, tm := range md.GetTopics() {
		for _, pm := range tm.GetPartitions() {
			node := pm.GetLeader()
			if fromFollower {
				for _, r := range pm.GetReplicas() {
					if r != node {
						node = r
						break
					}
				}
			}
			a := addr[node]
			if a == "" {
				a = g.BrokerList()[0]
			}
			byNode[a] = append(byNode[a], pm.GetPartition())
		}
	}
	const credit = 64 << 20
	// The streams end together: once every record arrived (or ctx ends).
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		if err != nil { // the streams started end with sctx
			stop()
			wg.Wait()
		}
	}()
	for a, parts := range byNode {
		cc, err := grpc.NewClient(a, app.StreamDialOptions()...)
		if err != nil {
			return err
		}
		st, err := sluicev1.NewConsumerServiceClient(cc).Consume(sctx)
		if err != nil {
			cc.Close()
			return err
		}
		for _, p := range parts {
			if err := st.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Subscribe{Subscribe: &sluicev1.Subscription{
				Topic: topic, Partitions: []int32{p},
				Start: &sluicev1.StartPosition{Position: &sluicev1.StartPosition_Offset{Offset: start[p]}}}}}); err != nil {
				cc.Close()
				return err
			}
		}
		if err := st.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Credit{Credit: &sluicev1.Credit{Bytes: credit}}}); err != nil {
			cc.Close()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cc.Close()
			defer stop()
			for m.records.Load() < total {
				msg, err := st.Recv()
				now := time.Now()
				if err != nil {
					if sctx.Err() == nil {
						m.fail(err)
					}
					return
				}
				if pe := msg.GetPartitionError(); pe != nil {
					m.fail(fmt.Errorf("partition %d: %s", pe.GetPartition(), pe.GetError().GetMessage()))
					return
				}
				b := msg.GetBatch().GetBatch()
				if b == nil {
					continue
				}
				for _, r := range b.GetRecords() {
					sample(now, r.GetValue())
				}
				m.records.Add(int64(len(b.GetRecords())))
				_ = st.Send(&sluicev1.ConsumeRequest{Request: &sluicev1.ConsumeRequest_Credit{Credit: &sluicev1.Credit{Bytes: int64(proto.Size(b))}}})
			}
		}()
	}
	go func() {
		wg.Wait()
		stop()
		close(done)
	}()
	return nil
}
