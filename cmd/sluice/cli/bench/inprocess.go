package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	"github.com/sluicehq/sluice/server"
)

// inProcessOptions: --in-process runs the benchmark against a one-node server
// started inside the bench process, so client and server share one process as
// in benchmarks of embeddable brokers. The client still reaches it over
// loopback TCP and gRPC; the server is the same as `sluice server`'s, with its
// data, fsynced, in a temporary directory that is removed afterwards.
type inProcessOptions struct {
	on  bool
	dir string
}

func (o *inProcessOptions) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.on, "in-process", false, "start a one-node server in this process and run against it (--brokers is ignored)")
	f.StringVar(&o.dir, "in-process-dir", os.TempDir(), "parent directory of the in-process server's temporary data directory")
}

// run calls f, first starting the in-process server when asked and pointing
// g's brokers at it.
func (o *inProcessOptions) run(g *app.Globals, f func() error) error {
	if !o.on {
		return f()
	}
	dir, err := os.MkdirTemp(o.dir, "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	cfg.ListenAddr, cfg.InternalListenAddr, cfg.HTTPListenAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("in-process server: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	g.Brokers = srv.Addr()
	progress := progressWriter(g)
	fmt.Fprintf(progress, "in-process one-node server at %s, data in %s\n", g.Brokers, dir)
	return f()
}
