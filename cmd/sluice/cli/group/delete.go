package group

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newDelete(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete GROUP...",
		Aliases: []string{"rm"},
		Short:   "Delete empty consumer groups and their committed offsets",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(g)
			if err != nil {
				return err
			}
			type result struct {
				Group   string `json:"group"`
				Deleted bool   `json:"deleted"`
			}
			var results []result
			for _, id := range args {
				ctx, cancel := g.Request(cmd.Context())
				_, err := c.DeleteGroup(ctx, &sluicev1.DeleteGroupRequest{GroupId: id})
				cancel()
				if err != nil {
					return app.Wrap(err, "delete group %q", id)
				}
				results = append(results, result{Group: id, Deleted: true})
				if !g.JSON() {
					fmt.Fprintf(g.Stdout, "deleted group %q\n", id)
				}
			}
			if g.JSON() {
				return g.PrintJSON(results)
			}
			return nil
		},
	}
}
