package topic

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newAlter(g *app.Globals) *cobra.Command {
	var (
		partitions int32
		set        []string
		reset      []string
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:   "alter TOPIC",
		Short: "Add partitions to a topic or change its configs",
		Long: `Add partitions to a topic (--partitions is the new total; partitions can only be
added) and set (--config key=value) or reset to the default (--reset key) topic configs.`,
		Example: `  sluice topic alter orders --partitions 6
  sluice topic alter orders --config retention.ms=604800000 --reset retention.bytes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			cfg, err := parseConfigs(set)
			if err != nil {
				return err
			}
			if partitions == 0 && len(cfg) == 0 && len(reset) == 0 {
				return fmt.Errorf("nothing to change: give --partitions, --config or --reset")
			}
			c, err := admin(g)
			if err != nil {
				return err
			}
			var out struct {
				Topic   any `json:"topic,omitempty"`
				Configs any `json:"configs,omitempty"`
			}
			if partitions > 0 {
				ctx, cancel := g.Request(cmd.Context())
				resp, err := c.AddPartitions(ctx, &sluicev1.AddPartitionsRequest{
					Name: name, TotalPartitions: partitions, ValidateOnly: dryRun,
				})
				cancel()
				if err != nil {
					return err
				}
				out.Topic = app.ProtoValue(resp.GetTopic())
				if !g.JSON() {
					fmt.Fprintf(g.Stdout, "topic %q now has %d partitions\n", name, len(resp.GetTopic().GetPartitions()))
				}
			}
			if len(cfg) > 0 || len(reset) > 0 {
				ctx, cancel := g.Request(cmd.Context())
				resp, err := c.AlterTopicConfig(ctx, &sluicev1.AlterTopicConfigRequest{
					Name: name, Set: cfg, Reset_: reset, ValidateOnly: dryRun,
				})
				cancel()
				if err != nil {
					return err
				}
				if g.JSON() {
					vals := make([]any, 0, len(resp.GetConfigs()))
					for _, c := range resp.GetConfigs() {
						vals = append(vals, app.ProtoValue(c))
					}
					out.Configs = vals
				} else {
					fmt.Fprintf(g.Stdout, "updated configs of topic %q\n", name)
					if err := printConfigs(g, resp.GetConfigs()); err != nil {
						return err
					}
				}
			}
			if g.JSON() {
				return g.PrintJSON(out)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32VarP(&partitions, "partitions", "p", 0, "new total number of partitions")
	f.StringArrayVarP(&set, "config", "c", nil, "set topic config key=value (repeatable)")
	f.StringArrayVar(&reset, "reset", nil, "reset a topic config to its default (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "validate only; change nothing")
	return cmd
}
