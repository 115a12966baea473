package group

import (
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newList(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List consumer groups",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(g)
			if err != nil {
				return err
			}
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			resp, err := c.ListGroups(ctx, &sluicev1.ListGroupsRequest{})
			if err != nil {
				return err
			}
			if g.JSON() {
				return app.PrintProtos(g, resp.GetGroups())
			}
			t := app.NewTable(g.Stdout, "GROUP", "STATE", "MEMBERS", "COORDINATOR")
			for _, gr := range resp.GetGroups() {
				t.Row(gr.GetGroupId(), state(gr.GetState()), gr.GetMembers(), gr.GetCoordinator())
			}
			return t.Flush()
		},
	}
}
