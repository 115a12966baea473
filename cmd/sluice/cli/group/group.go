package group

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// NewCommand returns the `group` command and its verbs.
func NewCommand(g *app.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, seek and delete consumer groups",
	}
	cmd.AddCommand(newList(g), newDescribe(g), newSeek(g), newDelete(g))
	return cmd
}

func client(g *app.Globals) (sluicev1.GroupServiceClient, error) {
	conn, err := g.Conn()
	if err != nil {
		return nil, err
	}
	return sluicev1.NewGroupServiceClient(conn), nil
}

// state renders a group state without its enum prefix: STABLE, EMPTY, ...
func state(s sluicev1.GroupState) string {
	return strings.TrimPrefix(s.String(), "GROUP_STATE_")
}

func assignor(a sluicev1.Assignor) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "ASSIGNOR_"))
}
