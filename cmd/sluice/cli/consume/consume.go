package consume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/clients"
	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Options are the flags of `sluice consume`.
type Options struct {
	From       string
	Count      int64
	Partitions []int32
	Format     string
	ExitAtEnd  bool
	Committed  bool
	Group      string
}

// NewCommand returns `sluice consume`.
func NewCommand(g *app.Globals) *cobra.Command {
	var o Options
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic as they arrive",
		Long: `Print records of a topic, from --from on, as they are committed; stop after -n
records, at the end of the log with --exit-at-end, or on Ctrl-C.

--from is beginning, end, an offset (applied to every partition read), or a time:
@1700000000000 (ms since the epoch), @2026-11-22T17:00:00Z, or @-1h (an hour ago).

With --group, the command joins that consumer group: the group assigns its partitions
(sharing them with other members), it starts where the group committed (or at --from
beginning|end for partitions without a committed offset), and it commits the position of
every record it prints.

--format is text (each value on its own line), json (one object per line with topic,
partition, offset, timestamp, key, value and headers) or a template with escapes:
` + templateHelp + `.`,
		Example: `  sluice consume orders --from beginning -n 10
  sluice consume orders --from @-15m --format '%p/%o %k=%v\n'
  sluice consume orders --partition 0 --from 42 --format json --exit-at-end
  sluice consume orders --group billing -n 100`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd.Context(), g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.From, "from", "f", "beginning", "where to start: beginning, end, OFFSET or @TIME")
	f.Int64VarP(&o.Count, "num", "n", 0, "stop after this many records (0 = no limit)")
	f.Int32SliceVarP(&o.Partitions, "partition", "p", nil, "partitions to read (default all)")
	f.StringVar(&o.Format, "format", "text", "output: text, json, or a template such as '%k=%v\\n'")
	f.BoolVarP(&o.ExitAtEnd, "exit-at-end", "e", false, "stop when every partition is read up to its end")
	f.BoolVar(&o.Committed, "read-committed", false, "hide records of open and aborted transactions")
	f.StringVarP(&o.Group, "group", "g", "", "consume as a member of this consumer group (partitions assigned by the group, positions committed)")
	return cmd
}

// start is a parsed --from.
type start struct {
	spec   *sluicev1.OffsetSpec // nil when offset is set
	offset int64
}

func parseFrom(s string, now time.Time) (start, error) {
	switch strings.ToLower(s) {
	case "beginning", "earliest", "start", "oldest":
		return start{spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}}}, nil
	case "end", "latest", "newest":
		return start{spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}}, nil
	}
	if t, ok := strings.CutPrefix(s, "@"); ok {
		ms, err := app.ParseTime(t, now)
		if err != nil {
			return start{}, fmt.Errorf("--from: %w", err)
		}
		return start{spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_TimestampMs{TimestampMs: ms}}}, nil
	}
	if off, err := strconv.ParseInt(s, 10, 64); err == nil && off >= 0 {
		return start{offset: off}, nil
	}
	if ms, err := app.ParseTime(s, now); err == nil && strings.Contains(s, "T") {
		return start{spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_TimestampMs{TimestampMs: ms}}}, nil
	}
	return start{}, fmt.Errorf("--from %q: want beginning, end, an offset, or @TIME", s)
}

// position is where one partition is being read.
type position struct {
	partition int32
	next      int64
	end       int64 // where --exit-at-end stops: the partition's end when reading began
}

func run(ctx context.Context, g *app.Globals, topic string, o Options) error {
	printer, err := NewPrinter(o.Format)
	if err != nil {
		return err
	}
	if o.Group != "" {
		return runGroup(ctx, g, topic, o, printer)
	}
	from, err := parseFrom(o.From, time.Now())
	if err != nil {
		return err
	}
	conn, err := g.Conn()
	if err != nil {
		return err
	}
	admin := sluicev1.NewAdminServiceClient(conn)
	rctx, cancel := g.Request(ctx)
	desc, err := admin.DescribeTopic(rctx, &sluicev1.DescribeTopicRequest{Name: topic})
	cancel()
	if err != nil {
		return err
	}
	parts := o.Partitions
	if len(parts) == 0 {
		for _, p := range desc.GetTopic().GetPartitions() {
			parts = append(parts, p.GetPartition())
		}
	}
	pos := make([]*position, 0, len(parts))
	byPart := map[int32]*position{}
	for _, p := range parts {
		ps := &position{partition: p, next: from.offset, end: -1}
		pos = append(pos, ps)
		byPart[p] = ps
	}
	if from.spec != nil {
		rctx, cancel := g.Request(ctx)
		resp, err := admin.ListOffsets(rctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: parts, Spec: from.spec,
			ReadCommitted: o.Committed})
		cancel()
		if err != nil {
			return err
		}
		for _, po := range resp.GetOffsets() {
			if e := po.GetError(); e != nil {
				return fmt.Errorf("partition %d: %w", po.GetPartition(), app.ReasonOf(e))
			}
			if ps := byPart[po.GetPartition()]; ps != nil {
				ps.next = po.GetOffset()
				if ps.next < 0 { // no record at or after the time: start at the end
					ps.next = po.GetHighWatermark()
				}
			}
		}
	}

	if o.ExitAtEnd {
		// Learn where each partition ends now (the last stable offset when reading
		// committed records only).
		rctx, cancel := g.Request(ctx)
		resp, err := admin.ListOffsets(rctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: parts,
			Spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}, ReadCommitted: o.Committed})
		cancel()
		if err != nil {
			return err
		}
		for _, po := range resp.GetOffsets() {
			if e := po.GetError(); e != nil {
				return fmt.Errorf("partition %d: %w", po.GetPartition(), app.ReasonOf(e))
			}
			if ps := byPart[po.GetPartition()]; ps != nil {
				ps.end = po.GetOffset()
			}
		}
	}

	opts := []clients.ConsumerOpt{clients.Brokers(g.BrokerList()...), clients.DialOptions(app.ClientDialOptions()...),
		clients.FetchMaxWait(time.Second)}
	if g.Timeout > 0 {
		opts = append(opts, clients.RequestTimeout(g.Timeout))
	}
	if o.Committed {
		opts = append(opts, clients.ReadCommitted())
	}
	if from.spec == nil {
		opts = append(opts, clients.StrictOffsets()) // an offset outside the log is an error, not a jump
	}
	c, err := clients.NewConsumer(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	assign := map[int32]clients.Offset{}
	for _, ps := range pos {
		assign[ps.partition] = clients.At(ps.next)
	}
	c.Assign(topic, assign)

	out := bufio.NewWriter(g.Stdout)
	defer out.Flush()
	var printed int64
	for {
		if o.ExitAtEnd && atEnd(pos) {
			return out.Flush()
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if o.ExitAtEnd {
			// Wake up now and then to see whether the remaining partitions moved past
			// their end without records for us (transaction markers).
			pctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		}
		recs, err := c.Poll(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil // interrupted: a normal way to stop
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		for _, r := range recs {
			m := Message{Topic: topic, Partition: r.Partition, Offset: r.Offset, Record: toProto(r)}
			if err := printer.Print(out, m); err != nil {
				return err
			}
			printed++
			if o.Count > 0 && printed >= o.Count {
				return out.Flush()
			}
		}
		for _, ps := range pos {
			if next, ok := c.Position(topic, ps.partition); ok {
				ps.next = next
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// toProto gives a consumed record the API's shape for the printers.
func toProto(r *clients.Record) *sluicev1.Record {
	pr := &sluicev1.Record{Key: r.Key, Value: r.Value}
	if !r.Timestamp.IsZero() {
		pr.TimestampMs = r.Timestamp.UnixMilli()
	}
	for _, h := range r.Headers {
		pr.Headers = append(pr.Headers, &sluicev1.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return pr
}

func atEnd(pos []*position) bool {
	for _, p := range pos {
		if p.end < 0 || p.next < p.end {
			return false
		}
	}
	return true
}
