package node

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// NewCommand returns the `node` command and its verbs.
func NewCommand(g *app.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Manage the nodes of the cluster",
	}
	cmd.AddCommand(newDecommission(g))
	return cmd
}

func newDecommission(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "decommission NODE-ID",
		Short: "Move every replica off a node; it gets no new ones",
		Long: `Mark a node decommissioned: each of its partition replicas moves to the live node
holding the fewest (through Raft membership changes: the new replica joins as a
learner, catches up, is promoted, then the old one is removed), and no new replica is
placed on it. Follow the move with 'sluice cluster status' or 'sluice topic describe';
the node can be stopped once it holds no replica.`,
		Example: "  sluice node decommission 4",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil || id <= 0 {
				return fmt.Errorf("node id %q: want a positive integer", args[0])
			}
			conn, err := g.Conn()
			if err != nil {
				return err
			}
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			resp, err := sluicev1.NewClusterServiceClient(conn).DecommissionNode(ctx, &sluicev1.DecommissionNodeRequest{NodeId: int32(id)})
			if err != nil {
				return err
			}
			if g.JSON() {
				return g.PrintProto(resp)
			}
			fmt.Fprintf(g.Stdout, "node %d decommissioning: %d replicas moving away\n", id, resp.GetReplicasToMove())
			return nil
		},
	}
}
