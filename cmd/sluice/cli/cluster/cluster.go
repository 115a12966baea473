package cluster

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// NewCommand returns the `cluster` command and its verbs.
func NewCommand(g *app.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster",
	}
	cmd.AddCommand(newStatus(g), newBalanceLeaders(g))
	return cmd
}

func newStatus(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster id, controller, nodes and partition health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := g.Conn()
			if err != nil {
				return err
			}
			c := sluicev1.NewClusterServiceClient(conn)
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			desc, err := c.DescribeCluster(ctx, &sluicev1.DescribeClusterRequest{})
			if err != nil {
				return err
			}
			md, err := c.GetMetadata(ctx, &sluicev1.GetMetadataRequest{})
			if err != nil {
				return err
			}
			if g.JSON() {
				return g.PrintJSON(struct {
					Cluster  any `json:"cluster"`
					Metadata any `json:"metadata"`
				}{app.ProtoValue(desc), app.ProtoValue(md)})
			}
			w := g.Stdout
			fmt.Fprintf(w, "CLUSTER       %s\n", desc.GetClusterId())
			fmt.Fprintf(w, "CONTROLLER    %d\n", desc.GetControllerId())
			fmt.Fprintf(w, "PARTITIONS    %d (under-replicated %d, leaderless %d)\n",
				desc.GetPartitionCount(), desc.GetUnderReplicatedPartitions(), desc.GetLeaderlessPartitions())
			fmt.Fprintf(w, "TOPICS        %d\n\n", len(md.GetTopics()))
			t := app.NewTable(w, "NODE", "ADDRESS", "RACK", "ALIVE", "CONTROLLER-VOTER")
			for _, n := range desc.GetNodes() {
				rack := n.GetRack()
				if rack == "" {
					rack = "-"
				}
				id := fmt.Sprint(n.GetNodeId())
				if n.GetNodeId() == desc.GetControllerId() {
					id += "*"
				}
				t.Row(id, n.GetAddress(), rack, n.GetAlive(), n.GetControllerVoter())
			}
			return t.Flush()
		},
	}
}

func newBalanceLeaders(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "balance-leaders",
		Short: "Hand partition leadership back to the preferred leaders",
		Long: `Every node hands the partitions it leads to their preferred leader (the first replica)
when that replica is caught up. Placement spreads preferred leaders evenly, so this
evens out leadership after nodes restarted. Nodes also do it on their own every
--leader-balance-interval.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := g.Conn()
			if err != nil {
				return err
			}
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			resp, err := sluicev1.NewClusterServiceClient(conn).BalanceLeaders(ctx, &sluicev1.BalanceLeadersRequest{})
			if err != nil {
				return err
			}
			if g.JSON() {
				return g.PrintProto(resp)
			}
			fmt.Fprintf(g.Stdout, "%d leadership transfers started\n", resp.GetTransfers())
			return nil
		},
	}
}
