package group

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

func newDescribe(g *app.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, assignments, committed offsets and lag",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(g)
			if err != nil {
				return err
			}
			ctx, cancel := g.Request(cmd.Context())
			defer cancel()
			d, err := c.DescribeGroup(ctx, &sluicev1.DescribeGroupRequest{GroupId: args[0]})
			if err != nil {
				return err
			}
			if g.JSON() {
				return g.PrintProto(d)
			}
			w := g.Stdout
			fmt.Fprintf(w, "GROUP         %s\n", d.GetGroupId())
			fmt.Fprintf(w, "STATE         %s\n", state(d.GetState()))
			fmt.Fprintf(w, "ASSIGNOR      %s\n", assignor(d.GetAssignor()))
			fmt.Fprintf(w, "EPOCH         %d\n", d.GetGroupEpoch())
			fmt.Fprintf(w, "COORDINATOR   %d\n", d.GetCoordinator())
			fmt.Fprintf(w, "MEMBERS       %d\n\n", len(d.GetMembers()))
			if len(d.GetMembers()) > 0 {
				t := app.NewTable(w, "MEMBER", "INSTANCE", "CLIENT", "EPOCH", "ASSIGNED")
				for _, m := range d.GetMembers() {
					t.Row(m.GetMemberId(), dash(m.GetInstanceId()), dash(m.GetClientId()), m.GetMemberEpoch(), partitions(m.GetAssigned()))
				}
				if err := t.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(w)
			}
			offs := append([]*sluicev1.PartitionLag(nil), d.GetOffsets()...)
			sort.Slice(offs, func(i, j int) bool {
				if offs[i].GetTopic() != offs[j].GetTopic() {
					return offs[i].GetTopic() < offs[j].GetTopic()
				}
				return offs[i].GetPartition() < offs[j].GetPartition()
			})
			t := app.NewTable(w, "TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG", "MEMBER")
			for _, o := range offs {
				t.Row(o.GetTopic(), o.GetPartition(), o.GetCommittedOffset(), o.GetHighWatermark(), o.GetLag(), dash(o.GetMemberId()))
			}
			return t.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// partitions renders assignments as topic[0,1,2] topic2[0].
func partitions(tps []*sluicev1.TopicPartitions) string {
	if len(tps) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(tps))
	for _, tp := range tps {
		ps := make([]string, 0, len(tp.GetPartitions()))
		for _, p := range tp.GetPartitions() {
			ps = append(ps, fmt.Sprint(p))
		}
		parts = append(parts, tp.GetTopic()+"["+strings.Join(ps, ",")+"]")
	}
	return strings.Join(parts, " ")
}
