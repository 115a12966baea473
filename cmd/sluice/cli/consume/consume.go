// Package consume implements `sluice consume TOPIC`.
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

--format is text (each value on its own line), json (one object per line with topic,
partition, offset, timestamp, key, value and headers) or a template with escapes:
` + templateHelp + `.`,
		Example: `  sluice consume orders --from beginning -n 10
  sluice consume orders --from @-15m --format '%p/%o %k=%v\n'
  sluice consume orders --partition 0 --from 42 --format json --exit-at-end`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd.Context(), g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.From, "from", "f", "end", "where to start: beginning, end, OFFSET or @TIME")
	f.Int64VarP(&o.Count, "num", "n", 0, "stop after this many records (0 = no limit)")
	f.Int32SliceVarP(&o.Partitions, "partition", "p", nil, "partitions to read (default all)")
	f.StringVar(&o.Format, "format", "text", "output: text, json, or a template such as '%k=%v\\n'")
	f.BoolVarP(&o.ExitAtEnd, "exit-at-end", "e", false, "stop when every partition is read up to its end")
	f.BoolVar(&o.Committed, "read-committed", false, "hide records of open and aborted transactions")
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
	end       int64 // high watermark last seen
}

func run(ctx context.Context, g *app.Globals, topic string, o Options) error {
	printer, err := NewPrinter(o.Format)
	if err != nil {
		return err
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
		resp, err := admin.ListOffsets(rctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: parts, Spec: from.spec})
		cancel()
		if err != nil {
			return err
		}
		for _, po := range resp.GetOffsets() {
			if e := po.GetError(); e != nil {
				return fmt.Errorf("partition %d: %w", po.GetPartition(), app.ReasonOf(e))
			}
			if ps := byPart[po.GetPartition()]; ps != nil {
				ps.next, ps.end = po.GetOffset(), po.GetHighWatermark()
				if ps.next < 0 { // no record at or after the time: start at the end
					ps.next = po.GetHighWatermark()
				}
			}
		}
	}

	out := bufio.NewWriter(g.Stdout)
	defer out.Flush()
	iso := sluicev1.IsolationLevel_ISOLATION_LEVEL_READ_UNCOMMITTED
	if o.Committed {
		iso = sluicev1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED
	}
	consumer := sluicev1.NewConsumerServiceClient(conn)
	var printed int64
	for {
		if o.ExitAtEnd && atEnd(pos) {
			return nil
		}
		req := &sluicev1.FetchRequest{
			Topic: topic, MinBytes: 1, MaxWaitMs: 1000,
			IsolationLevel: iso, RecordFormat: sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED,
		}
		for _, ps := range pos {
			req.Partitions = append(req.Partitions, &sluicev1.FetchPosition{Partition: ps.partition, Offset: ps.next})
		}
		fctx, cancel := context.WithTimeout(ctx, g.Timeout+time.Second)
		resp, err := consumer.Fetch(fctx, req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: a normal way to stop
			}
			return err
		}
		for _, fp := range resp.GetPartitions() {
			ps := byPart[fp.GetPartition()]
			if ps == nil {
				continue
			}
			if e := fp.GetError(); e != nil {
				return fmt.Errorf("partition %d: %w", fp.GetPartition(), app.ReasonOf(e))
			}
			ps.end = fp.GetHighWatermark()
			for _, b := range fp.GetBatches() {
				recs := b.GetRecords()
				if len(recs) == 0 && len(b.GetRecordsData()) > 0 {
					return errors.New("the server sent a compressed batch although plain records were asked for")
				}
				for i, r := range recs {
					off := b.GetBaseOffset() + int64(i)
					if off < ps.next {
						continue
					}
					if b.GetTimestampType() == sluicev1.TimestampType_TIMESTAMP_TYPE_LOG_APPEND_TIME {
						r.TimestampMs = b.GetMaxTimestampMs()
					}
					if err := printer.Print(out, Message{Topic: topic, Partition: ps.partition, Offset: off, Record: r}); err != nil {
						return err
					}
					ps.next = off + 1
					printed++
					if o.Count > 0 && printed >= o.Count {
						return out.Flush()
					}
				}
				if n := b.GetBaseOffset() + int64(len(recs)); len(recs) > 0 && n > ps.next {
					ps.next = n
				} else if len(recs) == 0 && b.GetRecordCount() > 0 {
					ps.next = max(ps.next, b.GetBaseOffset()+int64(b.GetRecordCount())) // control batch
				}
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func atEnd(pos []*position) bool {
	for _, p := range pos {
		if p.end < 0 || p.next < p.end {
			return false
		}
	}
	return true
}
