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
	var all bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster id, controller, nodes and partition health",
		Long: `Show the cluster id, the controller, each node (alive, leaders and replicas it holds)
and the partitions that need attention: without a leader, or with a replica lagging
(LAG is the entries each replica trails its leader by). --all lists every partition.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := g.Conn()
			if err != nil {
				return err
			}
			c := sluicev1.NewClusterServiceClient(conn)
			admin := sluicev1.NewAdminServiceClient(conn)
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			desc, err := c.DescribeCluster(ctx, &sluicev1.DescribeClusterRequest{})
			if err != nil {
				return err
			}
			md, err := c.GetMetadata(ctx, &sluicev1.GetMetadataRequest{IncludeInternal: true})
			if err != nil {
				return err
			}
			var topics []*sluicev1.TopicDescription
			for _, tm := range md.GetTopics() {
				d, err := admin.DescribeTopic(ctx, &sluicev1.DescribeTopicRequest{Name: tm.GetName()})
				if err != nil {
					continue // deleted meanwhile
				}
				topics = append(topics, d.GetTopic())
			}
			if g.JSON() {
				ts := make([]any, len(topics))
				for i, t := range topics {
					ts[i] = app.ProtoValue(t)
				}
				return g.PrintJSON(struct {
					Cluster  any   `json:"cluster"`
					Metadata any   `json:"metadata"`
					Topics   []any `json:"topics"`
				}{app.ProtoValue(desc), app.ProtoValue(md), ts})
			}
			leaders, replicas := map[int32]int{}, map[int32]int{}
			for _, t := range topics {
				for _, p := range t.GetPartitions() {
					leaders[p.GetLeader()]++
					for _, r := range p.GetReplicas() {
						replicas[r.GetNodeId()]++
					}
				}
			}
			w := g.Stdout
			fmt.Fprintf(w, "CLUSTER       %s\n", desc.GetClusterId())
			fmt.Fprintf(w, "CONTROLLER    %d\n", desc.GetControllerId())
			fmt.Fprintf(w, "PARTITIONS    %d (under-replicated %d, leaderless %d)\n",
				desc.GetPartitionCount(), desc.GetUnderReplicatedPartitions(), desc.GetLeaderlessPartitions())
			fmt.Fprintf(w, "TOPICS        %d\n\n", len(topics))
			t := app.NewTable(w, "NODE", "ADDRESS", "RACK", "ALIVE", "CONTROLLER-VOTER", "DECOMMISSIONING", "LEADERS", "REPLICAS")
			for _, n := range desc.GetNodes() {
				rack := n.GetRack()
				if rack == "" {
					rack = "-"
				}
				id := fmt.Sprint(n.GetNodeId())
				if n.GetNodeId() == desc.GetControllerId() {
					id += "*"
				}
				t.Row(id, n.GetAddress(), rack, n.GetAlive(), n.GetControllerVoter(), n.GetDecommissioning(), leaders[n.GetNodeId()], replicas[n.GetNodeId()])
			}
			if err := t.Flush(); err != nil {
				return err
			}
			var rows [][]any
			for _, tp := range topics {
				for _, p := range tp.GetPartitions() {
					reps, lags, lagging := app.ReplicaColumns(p)
					if !all && p.GetLeader() > 0 && !lagging {
						continue
					}
					leader := "none"
					if p.GetLeader() > 0 {
						leader = fmt.Sprint(p.GetLeader())
					}
					rows = append(rows, []any{tp.GetName(), p.GetPartition(), leader, reps, lags, p.GetHighWatermark()})
				}
			}
			if len(rows) == 0 {
				fmt.Fprintln(w, "\nevery partition has a leader and caught-up replicas")
				return nil
			}
			fmt.Fprintln(w)
			pt := app.NewTable(w, "TOPIC", "PARTITION", "LEADER", "REPLICAS", "LAG", "HIGH-WATERMARK")
			for _, r := range rows {
				pt.Row(r...)
			}
			return pt.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list every partition, not only those without a leader or with a lagging replica")
	return cmd
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
