package topic

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newCreate(g *app.Globals) *cobra.Command {
	var (
		partitions, rf int32
		configs        []string
		dryRun         bool
	)
	cmd := &cobra.Command{
		Use:   "create TOPIC...",
		Short: "Create topics",
		Long: `Create one or more topics.

Partitions and replication factor default to the server's settings when not given.
Topic configs are set with --config key=value (repeatable), for example
--config retention.ms=86400000 --config max.message.bytes=1048576.`,
		Example: `  sluice topic create orders --partitions 3
  sluice topic create logs --config retention.ms=3600000`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseConfigs(configs)
			if err != nil {
				return err
			}
			c, err := admin(g)
			if err != nil {
				return err
			}
			var created []*sluicev1.TopicDescription
			for _, name := range args {
				ctx, cancel := g.Request(cmd.Context())
				resp, err := c.CreateTopic(ctx, &sluicev1.CreateTopicRequest{
					Name: name, Partitions: partitions, ReplicationFactor: rf,
					Configs: cfg, ValidateOnly: dryRun,
				})
				cancel()
				if err != nil {
					return app.Wrap(err, "create %q", name)
				}
				created = append(created, resp.GetTopic())
				if !g.JSON() {
					verb := "created"
					if dryRun {
						verb = "validated"
					}
					fmt.Fprintf(g.Stdout, "%s topic %q (partitions: %d, replication factor: %d)\n",
						verb, name, len(resp.GetTopic().GetPartitions()), resp.GetTopic().GetReplicationFactor())
				}
			}
			if g.JSON() {
				return app.PrintProtos(g, created)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32VarP(&partitions, "partitions", "p", 0, "number of partitions (0 = server default)")
	f.Int32VarP(&rf, "replication-factor", "r", 0, "replicas per partition (0 = server default)")
	f.StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable)")
	f.BoolVar(&dryRun, "dry-run", false, "validate only; create nothing")
	return cmd
}
