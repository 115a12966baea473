package topic

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newDescribe(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe TOPIC...",
		Short: "Show a topic's partitions, leaders, offsets and configs",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := admin(g)
			if err != nil {
				return err
			}
			var descs []*sluicev1.TopicDescription
			for i, name := range args {
				ctx, cancel := g.Request(cmd.Context())
				resp, err := c.DescribeTopic(ctx, &sluicev1.DescribeTopicRequest{Name: name})
				cancel()
				if err != nil {
					return err
				}
				if g.JSON() {
					descs = append(descs, resp.GetTopic())
					continue
				}
				if i > 0 {
					fmt.Fprintln(g.Stdout)
				}
				if err := printDescription(g, resp.GetTopic()); err != nil {
					return err
				}
			}
			if g.JSON() {
				if len(descs) == 1 {
					return g.PrintProto(descs[0])
				}
				return app.PrintProtos(g, descs)
			}
			return nil
		},
	}
}
