package produce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// Options are the flags of `sluice produce`.
type Options struct {
	KeySeparator string
	Headers      []string
	Partition    int32 // -1: chosen by key (murmur2) or spread when there is no key
	Acks         string
	Compression  string
	MaxLineBytes int
}

// PartitionSummary reports what landed in one partition.
type PartitionSummary struct {
	Partition   int32 `json:"partition"`
	Records     int64 `json:"records"`
	FirstOffset int64 `json:"first_offset"` // -1 with --acks 0
	LastOffset  int64 `json:"last_offset"`  // -1 with --acks 0
}

// Summary is printed when stdin ends.
type Summary struct {
	Topic      string             `json:"topic"`
	Records    int64              `json:"records"`
	Partitions []PartitionSummary `json:"partitions"`
}

// NewCommand returns `sluice produce`.
func NewCommand(g *app.Globals) *cobra.Command {
	var o Options
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce records read line by line from standard input",
		Long: `Produce one record per line of standard input, until it ends.

With --key-separator, each line is split at the first separator into key and value (a
line without the separator is a value without a key); records with a key go to the partition Kafka's default partitioner (murmur2) would pick.
Lines are sent as they arrive and batched when they arrive quickly. At the end a summary
says how many records landed where (first and last offset per partition).`,
		Example: `  echo hello | sluice produce greetings
  printf 'k1:v1\nk2:v2\n' | sluice produce orders --key-separator : --header source=cli
  seq 1000 | sluice produce numbers --acks 1 --compression zstd`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd.Context(), g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.KeySeparator, "key-separator", "k", "", "split each line into key and value at the first occurrence of this string")
	f.StringArrayVarP(&o.Headers, "header", "H", nil, "header key=value added to every record (repeatable)")
	f.Int32VarP(&o.Partition, "partition", "p", -1, "partition to produce to (default: by key, or spread when no key)")
	f.StringVar(&o.Acks, "acks", "all", "acknowledgement: 0 (none), 1 (leader) or all (a majority of replicas)")
	f.StringVarP(&o.Compression, "compression", "z", "none", "compression: none, gzip, snappy, lz4 or zstd")
	f.IntVar(&o.MaxLineBytes, "max-line-bytes", 16<<20, "longest line accepted")
	return cmd
}

func parseHeaders(hs []string) ([]*sluicev1.RecordHeader, error) {
	var out []*sluicev1.RecordHeader
	for _, h := range hs {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--header %q: want key=value", h)
		}
		out = append(out, &sluicev1.RecordHeader{Key: k, Value: []byte(v)})
	}
	return out, nil
}

// readLines sends each line of r (without its line ending) on out, then closes out.
func readLines(ctx context.Context, r io.Reader, max int, out chan<- []byte) error {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, min(64<<10, max)), max) // the larger of the two bounds a line
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		select {
		case out <- line:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("a line is longer than --max-line-bytes (%d)", max)
	}
	return sc.Err()
}

func run(ctx context.Context, g *app.Globals, topic string, o Options) error {
	acks, err := app.ParseAcks(o.Acks)
	if err != nil {
		return err
	}
	comp, err := app.ParseCompression(o.Compression)
	if err != nil {
		return err
	}
	headers, err := parseHeaders(o.Headers)
	if err != nil {
		return err
	}
	snd, err := newSender(ctx, g, topic, o.Partition, acks, comp)
	if err != nil {
		return err
	}
	if f, ok := g.Stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintf(g.Stderr, "producing to %q: one record per line; end with Ctrl-D\n", topic)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan []byte, 1024)
	readErr := make(chan error, 1)
	go func() { readErr <- readLines(ctx, g.Stdin, o.MaxLineBytes, lines) }()

	for line := range lines {
		rec := &sluicev1.Record{Value: line, Headers: headers, TimestampMs: time.Now().UnixMilli()}
		if o.KeySeparator != "" {
			if k, v, ok := strings.Cut(string(line), o.KeySeparator); ok {
				rec.Key, rec.Value = []byte(k), []byte(v)
			}
		}
		if err := snd.add(ctx, rec); err != nil {
			cancel()
			_ = snd.close(ctx)
			return err
		}
	}
	if err := <-readErr; err != nil {
		_ = snd.close(ctx)
		return fmt.Errorf("reading standard input: %w", err)
	}
	if err := snd.close(ctx); err != nil {
		return err
	}
	return printSummary(g, topic, snd.summary())
}

func printSummary(g *app.Globals, topic string, parts map[int32]*PartitionSummary) error {
	s := Summary{Topic: topic, Partitions: []PartitionSummary{}}
	for _, p := range parts {
		s.Records += p.Records
		s.Partitions = append(s.Partitions, *p)
	}
	sort.Slice(s.Partitions, func(i, j int) bool { return s.Partitions[i].Partition < s.Partitions[j].Partition })
	if g.JSON() {
		return g.PrintJSON(s)
	}
	fmt.Fprintf(g.Stdout, "produced %s to %q\n", records(s.Records), topic)
	for _, p := range s.Partitions {
		if p.FirstOffset < 0 {
			fmt.Fprintf(g.Stdout, "  partition %d: %s (acks=0: offsets unknown)\n", p.Partition, records(p.Records))
			continue
		}
		fmt.Fprintf(g.Stdout, "  partition %d: %s, offsets %d-%d\n", p.Partition, records(p.Records), p.FirstOffset, p.LastOffset)
	}
	return nil
}

func records(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}

func timeOf(ms int64) time.Time { return time.UnixMilli(ms) }
