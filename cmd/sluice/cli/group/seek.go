package group

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newSeek(g *app.Globals) *cobra.Command {
	var (
		to         string
		topics     []string
		partitions []int32
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:     "seek GROUP --topic TOPIC --to beginning|end|OFFSET|@TIME",
		Aliases: []string{"reset-offsets"},
		Short:   "Move an empty group's committed offsets",
		Long: `Move the committed offsets of a group that has no members, for the partitions of
--topic (all of them, or those given with --partition): to the beginning or end of each
partition, to an offset, or to the first record at or after a time (@1700000000000,
@2026-11-22T17:00:00Z, @-1h). --dry-run shows the new offsets without committing them.`,
		Example: `  sluice group seek billing --topic orders --to beginning
  sluice group seek billing --topic orders --partition 0 --to 42 --dry-run
  sluice group seek billing --topic orders --to @-1h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(topics) == 0 {
				return fmt.Errorf("--topic is required")
			}
			if len(partitions) > 0 && len(topics) != 1 {
				return fmt.Errorf("--partition needs exactly one --topic")
			}
			target, err := parseTarget(to, time.Now())
			if err != nil {
				return err
			}
			req := &sluicev1.ResetOffsetsRequest{GroupId: args[0], Target: target, DryRun: dryRun}
			for _, t := range topics {
				req.Partitions = append(req.Partitions, &sluicev1.TopicPartitions{Topic: t, Partitions: partitions})
			}
			c, err := client(g)
			if err != nil {
				return err
			}
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			resp, err := c.ResetOffsets(ctx, req)
			if err != nil {
				return err
			}
			if g.JSON() {
				return g.PrintProto(resp)
			}
			if dryRun {
				fmt.Fprintln(g.Stdout, "dry run: nothing committed")
			}
			t := app.NewTable(g.Stdout, "TOPIC", "PARTITION", "OFFSET")
			for _, o := range resp.GetOffsets() {
				t.Row(o.GetTopic(), o.GetPartition(), o.GetOffset())
			}
			return t.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "beginning, end, an offset, or @TIME (required)")
	f.StringArrayVarP(&topics, "topic", "t", nil, "topic whose offsets move (repeatable; required)")
	f.Int32SliceVarP(&partitions, "partition", "p", nil, "partitions of the topic (default all)")
	f.BoolVar(&dryRun, "dry-run", false, "show the new offsets without committing them")
	return cmd
}

func parseTarget(s string, now time.Time) (*sluicev1.ResetTarget, error) {
	switch strings.ToLower(s) {
	case "beginning", "earliest", "start":
		return &sluicev1.ResetTarget{Target: &sluicev1.ResetTarget_Earliest{Earliest: true}}, nil
	case "end", "latest":
		return &sluicev1.ResetTarget{Target: &sluicev1.ResetTarget_Latest{Latest: true}}, nil
	case "":
		return nil, fmt.Errorf("--to is required: beginning, end, an offset, or @TIME")
	}
	if t, ok := strings.CutPrefix(s, "@"); ok {
		ms, err := app.ParseTime(t, now)
		if err != nil {
			return nil, fmt.Errorf("--to: %w", err)
		}
		return &sluicev1.ResetTarget{Target: &sluicev1.ResetTarget_TimestampMs{TimestampMs: ms}}, nil
	}
	if off, err := strconv.ParseInt(s, 10, 64); err == nil && off >= 0 {
		return &sluicev1.ResetTarget{Target: &sluicev1.ResetTarget_Offset{Offset: off}}, nil
	}
	return nil, fmt.Errorf("--to %q: want beginning, end, an offset, or @TIME", s)
}
