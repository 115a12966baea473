package offsets

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Row is one partition's offsets, as printed with --format json.
type Row struct {
	Partition int32  `json:"partition"`
	Earliest  int64  `json:"earliest"`
	Latest    int64  `json:"latest"`
	At        *int64 `json:"at,omitempty"`         // offset of the first record at or after --at
	AtTime    *int64 `json:"at_time_ms,omitempty"` // timestamp of that record, if any
}

// NewCommand returns `sluice offsets`.
func NewCommand(g *app.Globals) *cobra.Command {
	var (
		partitions []int32
		at         string
	)
	cmd := &cobra.Command{
		Use:   "offsets TOPIC",
		Short: "Show the earliest and latest offset of each partition",
		Long: `Show, per partition, the earliest offset still in the log (log start) and the latest
(the high watermark: the offset the next record will get). With --at, also the offset of
the first record whose timestamp is at or after that time (the high watermark if none).`,
		Example: `  sluice offsets orders
  sluice offsets orders --at 2026-11-22T17:00:00Z
  sluice offsets orders --at -1h --partition 0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			var atMs int64 = -1
			if at != "" {
				ms, err := app.ParseTime(at, time.Now())
				if err != nil {
					return err
				}
				atMs = ms
			}
			rows, err := List(cmd, g, topic, partitions, atMs)
			if err != nil {
				return err
			}
			if g.JSON() {
				return g.PrintJSON(rows)
			}
			header := []any{"PARTITION", "EARLIEST", "LATEST"}
			if atMs >= 0 {
				header = append(header, "AT "+app.FormatTime(atMs))
			}
			t := app.NewTable(g.Stdout, header...)
			for _, r := range rows {
				cells := []any{r.Partition, r.Earliest, r.Latest}
				if r.At != nil && *r.At >= 0 {
					cells = append(cells, *r.At)
				} else if r.At != nil {
					cells = append(cells, "-") // no record at or after that time
				}
				t.Row(cells...)
			}
			return t.Flush()
		},
	}
	cmd.Flags().Int32SliceVarP(&partitions, "partition", "p", nil, "partitions to show (default all)")
	cmd.Flags().StringVar(&at, "at", "", "also show the offset at this time (ms, RFC 3339, or -DURATION ago)")
	return cmd
}

// List returns the offsets of the given partitions (all when empty); atMs >= 0 also looks
// up offsets by time.
func List(cmd *cobra.Command, g *app.Globals, topic string, partitions []int32, atMs int64) ([]Row, error) {
	conn, err := g.Conn()
	if err != nil {
		return nil, err
	}
	c := sluicev1.NewAdminServiceClient(conn)
	query := func(spec *sluicev1.OffsetSpec) ([]*sluicev1.PartitionOffset, error) {
		ctx, cancel := g.Request(cmd.Context())
		defer cancel()
		resp, err := c.ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: partitions, Spec: spec})
		if err != nil {
			return nil, err
		}
		for _, po := range resp.GetOffsets() {
			if e := po.GetError(); e != nil {
				return nil, fmt.Errorf("partition %d: %w", po.GetPartition(), app.ReasonOf(e))
			}
		}
		return resp.GetOffsets(), nil
	}
	earliest, err := query(&sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}})
	if err != nil {
		return nil, err
	}
	latest, err := query(&sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}})
	if err != nil {
		return nil, err
	}
	var byTime []*sluicev1.PartitionOffset
	if atMs >= 0 {
		if byTime, err = query(&sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_TimestampMs{TimestampMs: atMs}}); err != nil {
			return nil, err
		}
	}
	rows := make([]Row, 0, len(earliest))
	index := map[int32]int{}
	for _, po := range earliest {
		index[po.GetPartition()] = len(rows)
		rows = append(rows, Row{Partition: po.GetPartition(), Earliest: po.GetOffset(), Latest: po.GetHighWatermark()})
	}
	for _, po := range latest {
		if i, ok := index[po.GetPartition()]; ok {
			rows[i].Latest = po.GetOffset()
		}
	}
	for _, po := range byTime {
		if i, ok := index[po.GetPartition()]; ok {
			off, ts := po.GetOffset(), po.GetTimestampMs()
			rows[i].At = &off
			if ts > 0 {
				rows[i].AtTime = &ts
			}
		}
	}
	return rows, nil
}
