package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/server/servertest"
)

// TestChildNode is not a test: it is the node process of
// TestKillDuringProduceKeepsAcknowledged, run in a child process.
func TestChildNode(t *testing.T) {
	dir := os.Getenv("SLUICE_CHILD_DIR")
	if dir == "" {
		t.Skip("runs only as the child of TestKillDuringProduceKeepsAcknowledged")
	}
	s, err := server.New(servertest.Config(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(s.Addr()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		t.Fatal(err)
	}
	select {} // until killed
}

// startChild runs a node in a child process and connects to it.
func startChild(t *testing.T, dir string) (*exec.Cmd, *grpc.ClientConn) {
	t.Helper()
	_ = os.Remove(filepath.Join(dir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildNode$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SLUICE_CHILD_DIR="+dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a failed test must not leave the node running
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	var addr []byte
	for {
		var err error
		if addr, err = os.ReadFile(filepath.Join(dir, "addr")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child node did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient(string(addr), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return cmd, conn
}

func TestKillDuringProduceKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	dir := t.TempDir()
	cmd, conn := startChild(t, dir)
	admin := sluicev1.NewAdminServiceClient(conn)
	if _, err := admin.CreateTopic(ctxT(t), &sluicev1.CreateTopicRequest{Name: "durable", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		partition int32
		offset    int64
		value     []byte
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
	)
	producer := sluicev1.NewProducerServiceClient(conn)
	enough := make(chan struct{})
	var once sync.Once
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				v := []byte(fmt.Sprintf("w%d-%d", w, i))
				p := int32(w % 2)
				resp, err := producer.Produce(context.Background(), &sluicev1.ProduceRequest{Topic: "durable", Partition: proto.Int32(p),
					Acks: sluicev1.Acks_ACKS_ALL, Batch: &sluicev1.RecordBatch{Records: []*sluicev1.Record{{Value: v}}}})
				if err != nil {
					return // the node is gone
				}
				mu.Lock()
				acked = append(acked, ack{p, resp.GetBaseOffset(), v})
				if len(acked) >= 200 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(120 * time.Second):
		t.Log("fewer than 200 acknowledgements before the kill")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-produce
		t.Fatal(err)
	}
	_ = cmd.Wait()
	wg.Wait()
	_ = conn.Close()

	_, conn = startChild(t, dir)
	defer conn.Close()
	consumer := sluicev1.NewConsumerServiceClient(conn)
	stored := map[int32]map[int64][]byte{}
	for p := range int32(2) {
		stored[p] = map[int64][]byte{}
		off := int64(0)
		for {
			resp, err := consumer.Fetch(ctxT(t), &sluicev1.FetchRequest{Topic: "durable", Partitions: []*sluicev1.FetchPosition{{Partition: p, Offset: off}}})
			if err != nil {
				t.Fatal(err)
			}
			fp := resp.GetPartitions()[0]
			if fp.GetError() != nil {
				t.Fatal(fp.GetError())
			}
			if len(fp.GetBatches()) == 0 {
				break
			}
			for _, b := range fp.GetBatches() {
				for i, r := range b.GetRecords() {
					stored[p][b.GetBaseOffset()+int64(i)] = r.GetValue()
				}
				off = b.GetBaseOffset() + int64(len(b.GetRecords()))
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	for _, a := range acked {
		if got, ok := stored[a.partition][a.offset]; !ok || !bytes.Equal(got, a.value) {
			t.Fatalf("acknowledged %s at %d/%d, found %q after the crash", a.value, a.partition, a.offset, got)
		}
	}
	t.Logf("%d acknowledged records intact after SIGKILL", len(acked))
}
