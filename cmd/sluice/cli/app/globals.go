package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// DefaultBrokers is the client API address of `sluice server` started with no flags.
const DefaultBrokers = "127.0.0.1:9700"

// Globals are the settings shared by every client command.
type Globals struct {
	Brokers string        // comma-separated host:port list (--brokers, SLUICE_BROKERS)
	Format  string        // "text" or "json" (--format)
	Timeout time.Duration // bound on each request (--timeout)

	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	conn *grpc.ClientConn
}

// AddFlags registers the global flags on the root command.
func (g *Globals) AddFlags(cmd *cobra.Command) {
	brokers := os.Getenv("SLUICE_BROKERS")
	if brokers == "" {
		brokers = DefaultBrokers
	}
	f := cmd.PersistentFlags()
	f.StringVar(&g.Brokers, "brokers", brokers,
		"comma-separated client API addresses of cluster nodes (env SLUICE_BROKERS)")
	f.StringVar(&g.Format, "format", "text", "output format: text or json")
	f.DurationVar(&g.Timeout, "timeout", 10*time.Second,
		"upper bound on each request to the cluster")
}

// JSON reports whether the user asked for JSON output.
func (g *Globals) JSON() bool { return g.Format == "json" }

// CheckFormat rejects an output format other than text or json.
func (g *Globals) CheckFormat() error {
	switch g.Format {
	case "text", "json":
		return nil
	}
	return fmt.Errorf("--format must be text or json, not %q", g.Format)
}

// BrokerList returns the broker addresses, trimmed, empty ones dropped.
func (g *Globals) BrokerList() []string {
	var out []string
	for _, b := range strings.Split(g.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Conn returns a client connection to the cluster, dialling lazily on first use. The
// connection tries the brokers in the order given and fails over between them.
func (g *Globals) Conn() (*grpc.ClientConn, error) {
	if g.conn != nil {
		return g.conn, nil
	}
	brokers := g.BrokerList()
	if len(brokers) == 0 {
		return nil, fmt.Errorf("no brokers: set --brokers or SLUICE_BROKERS")
	}
	r := manual.NewBuilderWithScheme("sluice")
	addrs := make([]resolver.Address, len(brokers))
	for i, b := range brokers {
		addrs[i] = resolver.Address{Addr: b}
	}
	r.InitialState(resolver.State{Addresses: addrs})
	conn, err := grpc.NewClient(r.Scheme()+":///cluster", append(StreamDialOptions(), grpc.WithResolvers(r))...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", g.Brokers, err)
	}
	g.conn = conn
	return conn, nil
}

// MaxMessageBytes bounds the messages the CLI accepts from the cluster (fetch responses).
const MaxMessageBytes = 64 << 20

// StreamDialOptions are the gRPC options of the CLI's own connections: static
// flow-control windows, as the client library sets (clients/options.go: gRPC's
// dynamic windows ping the server once per round trip on a stream of small
// messages), and the message size bounds.
func StreamDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStaticStreamWindowSize(4 << 20), grpc.WithStaticConnWindowSize(16 << 20),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}
}

// ClientDialOptions are the gRPC options of the CLI's client-library producers and
// consumers.
func ClientDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes))}
}

// Close closes the connection if one was made.
func (g *Globals) Close() error {
	if g.conn == nil {
		return nil
	}
	err := g.conn.Close()
	g.conn = nil
	return err
}

// Request returns a context bounded by --timeout for one request.
func (g *Globals) Request(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, g.Timeout)
}
