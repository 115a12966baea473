package topic

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// NewCommand returns the `topic` command and its verbs.
func NewCommand(g *app.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics",
	}
	cmd.AddCommand(newCreate(g), newList(g), newDescribe(g), newDelete(g), newAlter(g))
	return cmd
}

func admin(g *app.Globals) (sluicev1.AdminServiceClient, error) {
	conn, err := g.Conn()
	if err != nil {
		return nil, err
	}
	return sluicev1.NewAdminServiceClient(conn), nil
}

// parseConfigs turns repeated k=v flags into a map.
func parseConfigs(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--config %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func printConfigs(g *app.Globals, cfgs []*sluicev1.TopicConfig) error {
	sorted := append([]*sluicev1.TopicConfig(nil), cfgs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].GetKey() < sorted[j].GetKey() })
	t := app.NewTable(g.Stdout, "CONFIG", "VALUE", "SOURCE")
	for _, c := range sorted {
		src := "topic"
		if c.GetIsDefault() {
			src = "default"
		}
		t.Row(c.GetKey(), c.GetValue(), src)
	}
	return t.Flush()
}

func printDescription(g *app.Globals, d *sluicev1.TopicDescription) error {
	fmt.Fprintf(g.Stdout, "NAME                %s\n", d.GetName())
	if d.GetTopicId() != "" {
		fmt.Fprintf(g.Stdout, "ID                  %s\n", d.GetTopicId())
	}
	fmt.Fprintf(g.Stdout, "PARTITIONS          %d\n", len(d.GetPartitions()))
	fmt.Fprintf(g.Stdout, "REPLICATION-FACTOR  %d\n", d.GetReplicationFactor())
	if d.GetInternal() {
		fmt.Fprintf(g.Stdout, "INTERNAL            true\n")
	}
	fmt.Fprintln(g.Stdout)
	t := app.NewTable(g.Stdout, "PARTITION", "LEADER", "REPLICAS", "LAG", "LOG-START", "HIGH-WATERMARK", "SIZE")
	for _, p := range d.GetPartitions() {
		reps, lags, _ := app.ReplicaColumns(p)
		leader := fmt.Sprint(p.GetLeader())
		if p.GetLeader() < 0 {
			leader = "none" // electing
		}
		t.Row(p.GetPartition(), leader, reps, lags, p.GetLogStartOffset(), p.GetHighWatermark(), p.GetSizeBytes())
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if len(d.GetConfigs()) > 0 {
		fmt.Fprintln(g.Stdout)
		return printConfigs(g, d.GetConfigs())
	}
	return nil
}
