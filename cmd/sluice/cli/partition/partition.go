package partition

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// NewCommand returns the `partition` command and its verbs.
func NewCommand(g *app.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Manage partition replicas",
	}
	cmd.AddCommand(newReassign(g))
	return cmd
}

func newReassign(g *app.Globals) *cobra.Command {
	var replicas string
	cmd := &cobra.Command{
		Use:   "reassign TOPIC PARTITION --replicas ID,ID,...",
		Short: "Move a partition's replicas to the given nodes",
		Long: `Move a partition's replicas to the given nodes (the first is the preferred leader).
The move runs in the background through Raft membership changes: new replicas join as
learners, catch up and are promoted, then the replicas left out are removed. Records
stay readable and writable throughout. Follow it with 'sluice topic describe TOPIC'.`,
		Example: "  sluice partition reassign orders 0 --replicas 1,2,4",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil || p < 0 {
				return fmt.Errorf("partition %q: want a number", args[1])
			}
			var ids []int32
			for _, f := range strings.Split(replicas, ",") {
				id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
				if err != nil || id <= 0 {
					return fmt.Errorf("--replicas %q: want node ids such as 1,2,3", replicas)
				}
				ids = append(ids, int32(id))
			}
			conn, err := g.Conn()
			if err != nil {
				return err
			}
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			_, err = sluicev1.NewClusterServiceClient(conn).ReassignPartition(ctx, &sluicev1.ReassignPartitionRequest{
				Topic: args[0], Partition: int32(p), Replicas: ids})
			if err != nil {
				return err
			}
			if g.JSON() {
				return g.PrintJSON(map[string]any{"topic": args[0], "partition": p, "replicas": ids})
			}
			fmt.Fprintf(g.Stdout, "partition %s-%d moving to replicas %v\n", args[0], p, ids)
			return nil
		},
	}
	cmd.Flags().StringVar(&replicas, "replicas", "", "the new replica set as node ids, preferred leader first (required)")
	_ = cmd.MarkFlagRequired("replicas")
	return cmd
}
