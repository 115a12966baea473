package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/server"
)

// NewCommand returns `sluice server`. getenv reads the environment (os.Getenv in the
// binary; tests pass their own).
func NewCommand(stderr io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Sluice node",
		Long: `Run a Sluice node. With no flags it is a one-node cluster: data in ./data, the
client gRPC API on 127.0.0.1:9700 and HTTP (/metrics, /healthz, /readyz) on
127.0.0.1:9702, node-to-node traffic on 127.0.0.1:9701. A node of a cluster names the
controller voters with --controller-quorum (or joins a running cluster with --join) and
needs its own --node-id; see "Clusters of several nodes" in the README.

The Go garbage collector runs with GOGC=200 unless the GOGC environment variable says
otherwise: the node trades some heap for less collection work on the produce path.

Every setting can be given as a flag, as a SLUICE_* environment variable or as a key in a
YAML file (--config sluice.yaml); a flag wins over the environment, which wins over the
file, which wins over the default. YAML keys are the flag names with underscores:

  data_dir: /var/lib/sluice
  listen: 0.0.0.0:9700
  default_partitions: 3
  segment_bytes: 64MiB
  log_format: json

SIGTERM or SIGINT shuts the node down gracefully (running calls finish, up to
--shutdown-timeout); a second signal cuts remaining calls off at once.`,
		Args: cobra.NoArgs,
	}
	l := newLoader(cmd.Flags())
	cmd.Flags().SortFlags = false
	// The client flags of the root (--brokers, --format, --timeout) mean nothing here.
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
		c.Root().HelpFunc()(c, args)
	})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts, err := l.Load(getenv)
		if err != nil {
			return err
		}
		return run(opts, stderr)
	}
	return cmd
}

// NewLogger builds the process logger from the log settings.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// defaultGCPercent is the server's GOGC when the environment does not set one:
// produced batches are short-lived garbage, and collecting half as often measured
// 9-11 % more produce throughput (server/perf-produce.md).
const defaultGCPercent = 200

// run starts the node and blocks until a signal stops it.
func run(opts Options, stderr io.Writer) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	logger, err := NewLogger(stderr, opts.LogLevel, opts.LogFormat)
	if err != nil {
		return err
	}
	cfg := opts.Config
	cfg.Logger = logger
	if err := cfg.Validate(); err != nil {
		return err
	}

	// Signals are caught before the node starts so that an early SIGTERM is a
	// graceful stop, not a kill.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	logger.Info("sluice server ready", "addr", srv.Addr(), "http", srv.HTTPAddr(),
		"data_dir", cfg.DataDir, "node_id", cfg.NodeID)

	sig := <-sigs
	logger.Info("shutting down", "signal", sig.String(), "timeout", opts.ShutdownTimeout.String())

	// The graceful phase ends at the timeout or at a second signal; then the server cuts
	// remaining calls off. If even that hangs, a third chance is not given: run returns
	// and the process exits.
	ctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	select {
	case err = <-done:
	case sig = <-sigs:
		logger.Warn("second signal: stopping now", "signal", sig.String())
		cancel()
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			return errors.New("shutdown did not finish after a second signal; exiting")
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}
