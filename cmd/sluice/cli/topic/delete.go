package topic

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newDelete(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete TOPIC...",
		Aliases: []string{"rm"},
		Short:   "Delete topics and all their records",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := admin(g)
			if err != nil {
				return err
			}
			type result struct {
				Topic   string `json:"topic"`
				Deleted bool   `json:"deleted"`
			}
			var results []result
			for _, name := range args {
				ctx, cancel := g.Request(cmd.Context())
				_, err := c.DeleteTopic(ctx, &sluicev1.DeleteTopicRequest{Name: name})
				cancel()
				if err != nil {
					return app.Wrap(err, "delete %q", name)
				}
				results = append(results, result{Topic: name, Deleted: true})
				if !g.JSON() {
					fmt.Fprintf(g.Stdout, "deleted topic %q\n", name)
				}
			}
			if g.JSON() {
				return g.PrintJSON(results)
			}
			return nil
		},
	}
}
