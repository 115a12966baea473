package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/batch"
	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// ackedRecord is a record the server acknowledged with acks=all.
type ackedRecord struct {
	partition int32
	offset    int64
	value     string
}

// ackLog collects acknowledged records from many producers.
type ackLog struct {
	mu    sync.Mutex
	recs  []ackedRecord
	count atomic.Int64
}

func (a *ackLog) add(r ...ackedRecord) {
	a.mu.Lock()
	a.recs = append(a.recs, r...)
	a.mu.Unlock()
	a.count.Add(int64(len(r)))
}

func (a *ackLog) all() []ackedRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ackedRecord(nil), a.recs...)
}

// TestKillDuringProduceLosesNoAcknowledgedRecord kills the server with SIGKILL while many
// producers write with acks=all, restarts it on the same data directory, and checks that
// every acknowledged record is there, at the offset it was acknowledged with. It does so
// over several kill/restart rounds, so recovery of an already recovered log is covered.
//
// SIGKILL ends the process but not the kernel: what the server wrote survives in the page
// cache whether or not it was fsync'd. So this checks that nothing is acknowledged before
// it is written by the server and that recovery finds it at the same offsets; losing
// unsynced writes (power loss) is covered by storage's crash tests, which drop what was
// not synced.
func TestKillDuringProduceLosesNoAcknowledgedRecord(t *testing.T) {
	needBinary(t)
	const (
		topic      = "durable"
		partitions = 3
		producers  = 8
		rounds     = 3
		perRound   = 600 // acknowledged records before the kill, per round
	)
	dataDir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dataDir)
	{
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		_, err := sluicev1.NewAdminServiceClient(n.dial()).CreateTopic(ctx, &sluicev1.CreateTopicRequest{
			Name: topic, Partitions: partitions, ReplicationFactor: 1,
		})
		cancel()
		if err != nil {
			t.Fatalf("create topic: %v", err)
		}
	}

	acked := &ackLog{}
	for round := 0; round < rounds; round++ {
		conn := n.dial()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		target := acked.count.Load() + perRound
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				produceUntilCancelled(ctx, conn, topic, partitions, fmt.Sprintf("r%d-p%d", round, p), acked)
			}()
		}
		// Kill in the middle of the load: after enough acknowledgements, with every
		// producer still sending.
		guard := time.After(startDeadline)
		for acked.count.Load() < target {
			select {
			case <-guard:
				cancel()
				wg.Wait()
				t.Fatalf("round %d: only %d of %d records acknowledged after %v", round, acked.count.Load(), target, startDeadline)
			case <-time.After(5 * time.Millisecond):
			}
		}
		n.kill()
		cancel()
		wg.Wait()
		conn.Close()
		t.Logf("round %d: killed with %d records acknowledged so far", round, acked.count.Load())

		n = startNode(t, dataDir)
		verifyAcked(t, n.dial(), topic, partitions, acked.all())
	}
}

// codecs cycles the shapes of produced batches; UNSPECIFIED means plain records.
var codecs = []sluicev1.Compression{
	sluicev1.Compression_COMPRESSION_UNSPECIFIED,
	sluicev1.Compression_COMPRESSION_ZSTD,
	sluicev1.Compression_COMPRESSION_UNSPECIFIED,
	sluicev1.Compression_COMPRESSION_LZ4,
	sluicev1.Compression_COMPRESSION_NONE,
}

// produceUntilCancelled sends small acks=all batches in a loop and records what is
// acknowledged. Failures (the server is being killed) are expected and only end the loop
// once ctx is cancelled.
func produceUntilCancelled(ctx context.Context, conn *grpc.ClientConn, topic string, partitions int32, name string, acked *ackLog) {
	c := sluicev1.NewProducerServiceClient(conn)
	for seq := 0; ctx.Err() == nil; seq++ {
		part := int32(seq) % partitions
		nrec := 1 + seq%3
		recs := make([]*sluicev1.Record, nrec)
		for i := range recs {
			recs[i] = &sluicev1.Record{
				Key:   []byte(name),
				Value: []byte(fmt.Sprintf("%s-%d-%d", name, seq, i)),
			}
		}
		// Half the batches travel as plain records (the thin-client shape), half encoded
		// and compressed as the Go client sends them; both must survive.
		rb := &sluicev1.RecordBatch{Records: recs}
		if codec := codecs[seq%len(codecs)]; codec != sluicev1.Compression_COMPRESSION_UNSPECIFIED {
			var err error
			if rb, err = batch.Encode(recs, codec); err != nil {
				panic(err)
			}
		}
		resp, err := c.Produce(ctx, &sluicev1.ProduceRequest{
			Topic: topic, Partition: proto.Int32(part), Acks: sluicev1.Acks_ACKS_ALL, Batch: rb,
		})
		if err != nil {
			continue
		}
		out := make([]ackedRecord, nrec)
		for i := range recs {
			out[i] = ackedRecord{partition: resp.GetPartition(), offset: resp.GetBaseOffset() + int64(i), value: string(recs[i].GetValue())}
		}
		acked.add(out...)
	}
}

// verifyAcked reads every partition from its start to its high watermark and checks
// that each acknowledged record is present at its offset.
func verifyAcked(t *testing.T, conn *grpc.ClientConn, topic string, partitions int32, acked []ackedRecord) {
	t.Helper()
	// After a restart a partition serves reads once it has elected itself and applied its
	// log; until then its high watermark trails. Wait for it to cover every acknowledged
	// offset: if records were lost it never does, and the guard reports it.
	need := map[int32]int64{}
	for _, a := range acked {
		need[a.partition] = max(need[a.partition], a.offset+1)
	}
	for p := int32(0); p < partitions; p++ {
		waitHighWatermark(t, conn, topic, p, need[p])
	}
	stored := map[int32]map[int64]string{}
	for p := int32(0); p < partitions; p++ {
		stored[p] = readPartition(t, conn, topic, p)
	}
	sort.Slice(acked, func(i, j int) bool {
		if acked[i].partition != acked[j].partition {
			return acked[i].partition < acked[j].partition
		}
		return acked[i].offset < acked[j].offset
	})
	seen := map[int32]map[int64]bool{}
	missing := 0
	for _, a := range acked {
		if seen[a.partition] == nil {
			seen[a.partition] = map[int64]bool{}
		}
		if seen[a.partition][a.offset] {
			t.Errorf("partition %d offset %d acknowledged twice", a.partition, a.offset)
		}
		seen[a.partition][a.offset] = true
		got, ok := stored[a.partition][a.offset]
		switch {
		case !ok:
			missing++
			if missing <= 20 {
				t.Errorf("acknowledged record %q at partition %d offset %d is missing after restart", a.value, a.partition, a.offset)
			}
		case got != a.value:
			t.Errorf("partition %d offset %d holds %q, acknowledged %q", a.partition, a.offset, got, a.value)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records missing after restart", missing, len(acked))
	}
	t.Logf("all %d acknowledged records intact", len(acked))
}

// waitHighWatermark waits until partition p's high watermark reaches at least want.
func waitHighWatermark(t *testing.T, conn *grpc.ClientConn, topic string, p int32, want int64) {
	t.Helper()
	admin := sluicev1.NewAdminServiceClient(conn)
	deadline := time.Now().Add(startDeadline)
	var hw int64 = -1
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		resp, err := admin.ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: []int32{p},
			Spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Latest{Latest: true}}})
		cancel()
		lastErr = err
		if err == nil && len(resp.GetOffsets()) == 1 && resp.GetOffsets()[0].GetError() == nil {
			hw = resp.GetOffsets()[0].GetHighWatermark()
			if hw >= want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("partition %d: high watermark %d after restart, below the acknowledged end %d (last error %v)", p, hw, want, lastErr)
}

// readPartition fetches a partition from its start to its high watermark.
func readPartition(t *testing.T, conn *grpc.ClientConn, topic string, p int32) map[int64]string {
	t.Helper()
	admin := sluicev1.NewAdminServiceClient(conn)
	consumer := sluicev1.NewConsumerServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*callDeadline)
	defer cancel()
	lo, err := admin.ListOffsets(ctx, &sluicev1.ListOffsetsRequest{Topic: topic, Partitions: []int32{p},
		Spec: &sluicev1.OffsetSpec{Spec: &sluicev1.OffsetSpec_Earliest{Earliest: true}}})
	if err != nil {
		t.Fatalf("list offsets of partition %d: %v", p, err)
	}
	next := lo.GetOffsets()[0].GetOffset()
	hw := lo.GetOffsets()[0].GetHighWatermark()
	out := map[int64]string{}
	for next < hw {
		resp, err := consumer.Fetch(ctx, &sluicev1.FetchRequest{Topic: topic,
			Partitions:   []*sluicev1.FetchPosition{{Partition: p, Offset: next}},
			RecordFormat: sluicev1.RecordFormat_RECORD_FORMAT_DECOMPRESSED})
		if err != nil {
			t.Fatalf("fetch partition %d at %d: %v", p, next, err)
		}
		fp := resp.GetPartitions()[0]
		if e := fp.GetError(); e != nil {
			t.Fatalf("fetch partition %d at %d: %v", p, next, e)
		}
		hw = fp.GetHighWatermark()
		progressed := false
		for _, b := range fp.GetBatches() {
			for i, r := range b.GetRecords() {
				off := b.GetBaseOffset() + int64(i)
				if prev, dup := out[off]; dup && prev != string(r.GetValue()) {
					t.Fatalf("partition %d offset %d served twice with different values", p, off)
				}
				out[off] = string(r.GetValue())
				if off >= next {
					next, progressed = off+1, true
				}
			}
		}
		if !progressed && next < hw {
			t.Fatalf("partition %d: fetch at %d returned nothing below the high watermark %d", p, next, hw)
		}
	}
	return out
}
