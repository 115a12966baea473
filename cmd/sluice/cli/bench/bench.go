package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/cmd/sluice/cli/app"
	"github.com/sluicehq/sluice/cmd/sluice/cli/bench/hist"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// DefaultTopic is the topic the benchmarks use unless told otherwise.
const DefaultTopic = "sluice-bench"

// NewCommand returns the `bench` command and its verbs.
func NewCommand(g *app.Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Generate load and measure throughput and latency",
		Long: `Generate load and measure throughput and latency. The garbage collector runs
with GOGC=200, as the server's does, unless the GOGC environment variable says otherwise.`,
	}
	cmd.AddCommand(newProduce(g), newConsume(g), newE2E(g))
	cmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this client process to this file")
	return cmd
}

var cpuProfile string // --cpuprofile; set by flag parsing before a command runs

// gcPercent is the bench's GOGC when the environment does not set one. A bench run
// allocates as fast as records arrive (a consumer's records live in the frames they
// came in); collecting at twice the live heap rather than once cost the consume bench
// a tenth of its CPU. The server runs with the same setting.
const gcPercent = 200

// profile sets the garbage collector's pace (gcPercent), starts the CPU profile asked
// for with --cpuprofile and returns its stop function. Every bench verb calls it before
// it starts measuring.
func profile() (func(), error) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// Summary is the result of a run, printed as text or (--format json) as JSON.
type Summary struct {
	Mode          string  `json:"mode"` // produce, produce-sync, consume
	Topic         string  `json:"topic"`
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"` // 10^6 bytes of record values per second
	Latency       Latency `json:"latency_ms"`
	Error         string  `json:"error,omitempty"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	Avg  float64 `json:"avg"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func latencyOf(h *hist.Histogram) Latency {
	ms := func(ns uint64) float64 { return float64(ns) / 1e6 }
	return Latency{
		Avg: h.Mean() / 1e6, P50: ms(h.Quantile(0.50)), P95: ms(h.Quantile(0.95)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max()),
	}
}

// meter counts progress; workers add, the reporter reads.
type meter struct {
	records atomic.Int64
	bytes   atomic.Int64
	lat     *hist.Recorder

	errOnce sync.Once
	err     error // set once, read after workers stop
	cancel  context.CancelFunc
}

func (m *meter) fail(err error) {
	m.errOnce.Do(func() {
		m.err = err
		m.cancel()
	})
}

// report prints a progress line every second until ctx ends.
func (m *meter) report(ctx context.Context, w io.Writer, start time.Time, total int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastBytes, lastAt := int64(0), int64(0), start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			recs, bytes := m.records.Load(), m.bytes.Load()
			dt := now.Sub(lastAt).Seconds()
			h := m.lat.Interval()
			of := ""
			if total > 0 {
				of = fmt.Sprintf("/%d", total)
			}
			fmt.Fprintf(w, "%6.1fs  %10d%s records  %10.0f records/s  %8.2f MB/s  latency avg %.2f ms p50 %.2f ms p99 %.2f ms max %.2f ms\n",
				now.Sub(start).Seconds(), recs, of, float64(recs-last)/dt, float64(bytes-lastBytes)/dt/1e6,
				h.Mean()/1e6, float64(h.Quantile(0.5))/1e6, float64(h.Quantile(0.99))/1e6, float64(h.Max())/1e6)
			last, lastBytes, lastAt = recs, bytes, now
		}
	}
}

func (m *meter) summary(mode, topic string, elapsed time.Duration) Summary {
	s := Summary{
		Mode: mode, Topic: topic, Records: m.records.Load(), Bytes: m.bytes.Load(),
		Seconds: elapsed.Seconds(), Latency: latencyOf(m.lat.Total()),
	}
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Records) / s.Seconds
		s.MBPerSec = float64(s.Bytes) / s.Seconds / 1e6
	}
	if m.err != nil {
		s.Error = app.Describe(m.err, "")
	}
	return s
}

func printSummary(g *app.Globals, s Summary) error {
	if g.JSON() {
		return g.PrintJSON(s)
	}
	fmt.Fprintf(g.Stdout, "%s: %d records (%.1f MB) in %.2f s: %.0f records/s, %.2f MB/s\n",
		s.Mode, s.Records, float64(s.Bytes)/1e6, s.Seconds, s.RecordsPerSec, s.MBPerSec)
	l := s.Latency
	fmt.Fprintf(g.Stdout, "latency ms: avg %.2f  p50 %.2f  p95 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
		l.Avg, l.P50, l.P95, l.P99, l.P999, l.Max)
	return nil
}

// ensureTopic creates the topic if it does not exist and returns its partition count.
// A note says so when an existing topic has another partition count than asked for.
func ensureTopic(ctx context.Context, g *app.Globals, topic string, partitions, rf int32, asked bool) (int32, error) {
	conn, err := g.Conn()
	if err != nil {
		return 0, err
	}
	admin := sluicev1.NewAdminServiceClient(conn)
	rctx, cancel := g.Request(ctx)
	defer cancel()
	d, err := admin.DescribeTopic(rctx, &sluicev1.DescribeTopicRequest{Name: topic})
	if err == nil {
		n := int32(len(d.GetTopic().GetPartitions()))
		if asked && n != partitions {
			fmt.Fprintf(g.Stderr, "note: topic %q exists with %d partitions; --partitions %d ignored\n", topic, n, partitions)
		}
		return n, nil
	}
	if status.Code(err) != codes.NotFound {
		return 0, err
	}
	resp, err := admin.CreateTopic(rctx, &sluicev1.CreateTopicRequest{Name: topic, Partitions: partitions, ReplicationFactor: rf})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return 0, app.Wrap(err, "create topic %q", topic)
	}
	if err != nil {
		return ensureTopic(ctx, g, topic, 0, 0, false)
	}
	return int32(len(resp.GetTopic().GetPartitions())), nil
}

// payload returns n random printable bytes.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('A' + r.IntN(26))
	}
	return b
}

// limiter paces records to a rate shared by all workers; rate 0 means unlimited.
type limiter struct {
	rate  float64
	start time.Time
	next  atomic.Int64 // records reserved so far
}

func (l *limiter) wait(ctx context.Context, n int64) error {
	if l == nil || l.rate <= 0 {
		return ctx.Err()
	}
	reserved := l.next.Add(n)
	at := l.start.Add(time.Duration(float64(reserved-n) / l.rate * float64(time.Second)))
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// progressWriter is where a benchmark reports progress: standard output, or
// standard error with --format json, which keeps standard output for the
// result.
func progressWriter(g *app.Globals) io.Writer {
	if g.JSON() {
		return g.Stderr
	}
	return g.Stdout
}
