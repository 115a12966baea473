package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	"github.com/sluicehq/sluice/cmd/sluice/cli/bench"
	"github.com/sluicehq/sluice/cmd/sluice/cli/cluster"
	"github.com/sluicehq/sluice/cmd/sluice/cli/consume"
	"github.com/sluicehq/sluice/cmd/sluice/cli/group"
	"github.com/sluicehq/sluice/cmd/sluice/cli/node"
	"github.com/sluicehq/sluice/cmd/sluice/cli/offsets"
	"github.com/sluicehq/sluice/cmd/sluice/cli/partition"
	"github.com/sluicehq/sluice/cmd/sluice/cli/produce"
	"github.com/sluicehq/sluice/cmd/sluice/cli/serve"
	"github.com/sluicehq/sluice/cmd/sluice/cli/topic"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1 // the command failed
	ExitUsage = 2 // bad flags or arguments
)

type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// NewRoot builds the command tree.
func NewRoot(g *app.Globals, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Sluice: an event-streaming platform with a gRPC API",
		Long: `Sluice is an event-streaming platform: topics, partitions and offsets on a
partitioned log where every partition is its own Raft group, served over gRPC.

Run a node with 'sluice server'; every other command talks to a running cluster at
--brokers (env SLUICE_BROKERS, default ` + app.DefaultBrokers + `).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Name() == "server" {
				return nil
			}
			if f := cmd.Flags().Lookup("format"); f != nil && f.Value.Type() == "string" && cmd.Name() != "consume" {
				return g.CheckFormat()
			}
			return nil
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	g.AddFlags(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		serve.NewCommand(g.Stderr, getenv),
		topic.NewCommand(g),
		produce.NewCommand(g),
		consume.NewCommand(g),
		offsets.NewCommand(g),
		cluster.NewCommand(g),
		node.NewCommand(g),
		partition.NewCommand(g),
		group.NewCommand(g),
		bench.NewCommand(g),
		newVersion(),
	)
	// Commands taking arguments report a wrong count as a usage error.
	var wrapArgs func(c *cobra.Command)
	wrapArgs = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{err}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			wrapArgs(sub)
		}
	}
	wrapArgs(root)
	return root
}

// Main runs the command line and returns the process exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	g := &app.Globals{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := NewRoot(g, getenv)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	// Client commands stop on the first SIGINT/SIGTERM through their context; `sluice
	// server` handles signals itself.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := root.ExecuteContextC(ctx)
	_ = g.Close()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "error: %s\n", app.Describe(err, g.Brokers))
	var ue usageError
	if errors.As(err, &ue) || isUnknownCommand(err) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return ExitUsage
	}
	return ExitError
}

func isUnknownCommand(err error) bool {
	const prefix = "unknown command"
	return len(err.Error()) >= len(prefix) && err.Error()[:len(prefix)] == prefix
}
