package topic

import (
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newList(g *app.Globals) *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := admin(g)
			if err != nil {
				return err
			}
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			resp, err := c.ListTopics(ctx, &sluicev1.ListTopicsRequest{IncludeInternal: internal})
			if err != nil {
				return err
			}
			if g.JSON() {
				return app.PrintProtos(g, resp.GetTopics())
			}
			t := app.NewTable(g.Stdout, "NAME", "PARTITIONS", "REPLICAS")
			for _, tp := range resp.GetTopics() {
				name := tp.GetName()
				if tp.GetInternal() {
					name += " (internal)"
				}
				t.Row(name, tp.GetPartitions(), tp.GetReplicationFactor())
			}
			return t.Flush()
		},
	}
	cmd.Flags().BoolVarP(&internal, "internal", "i", false, "include internal topics")
	return cmd
}
