package consume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/clients"
	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
)

// runGroup consumes as a member of a consumer group: the group's coordinator assigns the
// partitions, and the positions of the records printed are committed after each poll and
// when the command stops, so the next member of the group goes on from there.
func runGroup(ctx context.Context, g *app.Globals, topic string, o Options, printer Printer) error {
	if len(o.Partitions) > 0 || o.ExitAtEnd {
		return errors.New("--group assigns partitions itself: --partition and --exit-at-end do not apply")
	}
	reset := clients.AtStart()
	switch strings.ToLower(o.From) {
	case "beginning", "earliest", "start", "oldest":
	case "end", "latest", "newest":
		reset = clients.AtEnd()
	default:
		return fmt.Errorf("with --group, --from is beginning or end (where partitions without a committed offset start), not %q", o.From)
	}
	opts := []clients.ConsumerOpt{clients.Brokers(g.BrokerList()...), clients.DialOptions(app.ClientDialOptions()...)}
	if g.Timeout > 0 {
		opts = append(opts, clients.RequestTimeout(g.Timeout))
	}
	if o.Committed {
		opts = append(opts, clients.ReadCommitted())
	}
	c, err := clients.NewGroupConsumer(o.Group, clients.GroupConfig{
		Topics: []string{topic}, ClientID: "sluice-cli", ManualCommit: true, ResetTo: reset,
	}, opts...)
	if err != nil {
		return err
	}
	printed := map[clients.TopicPartition]int64{}
	commit := func(ctx context.Context) error {
		if len(printed) == 0 {
			return nil
		}
		err := c.CommitOffsets(ctx, printed)
		clear(printed)
		return err
	}
	defer func() {
		// Commit what was printed even when interrupted, then leave the group.
		cctx, cancel := g.Request(context.Background())
		_ = commit(cctx)
		cancel()
		_ = c.Close()
	}()

	out := bufio.NewWriter(g.Stdout)
	defer out.Flush()
	var count int64
	for {
		recs, err := c.Poll(ctx)
		if ctx.Err() != nil {
			return out.Flush()
		}
		if err != nil {
			return err
		}
		for _, r := range recs {
			m := Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Record: toProto(r)}
			if err := printer.Print(out, m); err != nil {
				return err
			}
			printed[clients.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
			count++
			if o.Count > 0 && count >= o.Count {
				return out.Flush() // the deferred commit covers these records
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
		if err := commit(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
}
