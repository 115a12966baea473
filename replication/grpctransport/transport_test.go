package grpctransport

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/replication"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFrameRoundTrip(t *testing.T) {
	msgs := []replication.GroupMessage{
		{GroupID: 7, Message: &raftpb.Message{Type: raftpb.MsgApp.Enum(), To: new(uint64(2)), From: new(uint64(1)),
			Entries: []*raftpb.Entry{{Index: new(uint64(5)), Term: new(uint64(2)), Data: []byte("x")}}}},
		{GroupID: 0, Message: &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), Context: []byte{1, 2}}},
		{GroupID: 9, Quiesce: true, Message: &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), Commit: new(uint64(4))}},
	}
	b, err := encodeFrame(nil, 3, msgs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeFrame(b)
	from, got := f.from, f.msgs
	if err != nil || from != 3 || len(got) != len(msgs) {
		t.Fatalf("decode: from %d, %d msgs, %v", from, len(got), err)
	}
	for i := range msgs {
		if got[i].GroupID != msgs[i].GroupID || got[i].Quiesce != msgs[i].Quiesce ||
			got[i].Message.String() != msgs[i].Message.String() {
			t.Fatalf("message %d: %+v, want %+v", i, got[i], msgs[i])
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	b, _ := encodeFrame(nil, 1, []replication.GroupMessage{{GroupID: 2, Quiesce: true,
		Message: &raftpb.Message{Type: raftpb.MsgVote.Enum(), Term: new(uint64(3))}}})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{8, 1, 18, 0})
	c := chunk{group: 4, id: 9, offset: 3, total: 10, data: []byte("chunk")}
	f.Add(append(chunkHead(1, c), c.data...))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFrame(data)
		if err != nil {
			return
		}
		re, err := encodeFrame(nil, fr.from, fr.msgs)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := decodeFrame(re)
		if err != nil || fr2.from != fr.from || len(fr2.msgs) != len(fr.msgs) {
			t.Fatalf("re-decode: %v", err)
		}
		var asm reassembly
		for _, c := range fr.chunks {
			if c.offset+uint64(len(c.data)) > c.total || c.total > maxChunkedMessage {
				t.Fatalf("chunk [%d, +%d) of %d accepted", c.offset, len(c.data), c.total)
			}
			re := append(chunkHead(fr.from, c), c.data...)
			fr3, err := decodeFrame(re)
			if err != nil || len(fr3.chunks) != 1 || fr3.chunks[0].offset != c.offset || !bytes.Equal(fr3.chunks[0].data, c.data) {
				t.Fatalf("chunk re-decode: %v", err)
			}
			_, _, _ = asm.add(c) // must not panic
		}
	})
}

// node is a host with its own gRPC server and transport.
type node struct {
	id   uint64
	dir  string
	lis  net.Listener
	srv  *grpc.Server
	tr   *Transport
	host *replication.Host
}

type cluster struct {
	t     *testing.T
	tb    testing.TB
	mu    sync.Mutex
	addrs map[uint64]string
	nodes map[uint64]*node
}

func (c *cluster) resolve(id uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.addrs[id]
	return a, ok
}

func (c *cluster) start(id uint64, dir string) *node {
	c.tb = c.t
	n := c.startHost(id, dir, 10*time.Millisecond)
	if _, err := n.host.OpenPartition(replication.PartitionSpec{GroupID: 1, Dir: "p1", Voters: []uint64{1, 2, 3}}); err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *cluster) startHost(id uint64, dir string, tick time.Duration, opts ...func(*replication.HostConfig)) *node {
	c.tb.Helper()
	addr := "127.0.0.1:0"
	c.mu.Lock()
	if a, ok := c.addrs[id]; ok {
		addr = a // restart on the same address
	}
	c.mu.Unlock()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		c.tb.Fatal(err)
	}
	tr, err := New(Config{NodeID: id, Resolve: c.resolve, Backoff: 10 * time.Millisecond})
	if err != nil {
		c.tb.Fatal(err)
	}
	srv := grpc.NewServer()
	tr.RegisterService(srv)
	go func() { _ = srv.Serve(lis) }()
	hc := replication.HostConfig{NodeID: id, DataDir: dir, Transport: tr, TickInterval: tick}
	for _, o := range opts {
		o(&hc)
	}
	h, err := replication.NewHost(hc)
	if err != nil {
		c.tb.Fatal(err)
	}
	n := &node{id: id, dir: dir, lis: lis, srv: srv, tr: tr, host: h}
	c.mu.Lock()
	c.addrs[id] = lis.Addr().String()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

func (c *cluster) stop(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	if err := n.host.Close(); err != nil {
		c.tb.Error(err)
	}
	_ = n.tr.Close()
	n.srv.Stop()
}

func (c *cluster) leader() *replication.Partition {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, n := range c.nodes {
			if p, ok := n.host.Partition(1); ok && p.IsLeader() {
				c.mu.Unlock()
				return p
			}
		}
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader")
	return nil
}

func (c *cluster) produce(ctx context.Context, i int) uint64 {
	c.t.Helper()
	b := replication.ProduceBatch{Data: []byte(fmt.Sprintf("batch-%d", i)), Records: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	for {
		res, err := c.leader().Produce(ctx, b, replication.AcksAll)
		if err == nil {
			return res.BaseOffset
		}
		if ctx.Err() != nil {
			c.t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Three hosts over real gRPC on loopback: elect, replicate, lose the
// leader, keep every acknowledged batch.
func TestThreeNodesOverGRPC(t *testing.T) {
	c := &cluster{t: t, addrs: map[uint64]string{}, nodes: map[uint64]*node{}}
	dirs := map[uint64]string{1: t.TempDir(), 2: t.TempDir(), 3: t.TempDir()}
	for id := uint64(1); id <= 3; id++ {
		c.start(id, dirs[id])
	}
	defer func() {
		for id := uint64(1); id <= 3; id++ {
			c.stop(id)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := map[uint64]string{}
	for i := 0; i < 20; i++ {
		acked[c.produce(ctx, i)] = fmt.Sprintf("batch-%d", i)
	}
	old := c.leader()
	var oldID uint64
	c.mu.Lock()
	for id, n := range c.nodes {
		if p, _ := n.host.Partition(1); p == old {
			oldID = id
		}
	}
	c.mu.Unlock()
	c.stop(oldID)
	for i := 20; i < 40; i++ {
		acked[c.produce(ctx, i)] = fmt.Sprintf("batch-%d", i)
	}
	c.start(oldID, dirs[oldID])
	hw := c.leader().HighWatermark()
	c.mu.Lock()
	nodes := []*node{c.nodes[1], c.nodes[2], c.nodes[3]}
	c.mu.Unlock()
	for _, n := range nodes {
		p, _ := n.host.Partition(1)
		for p.HighWatermark() < hw {
			select {
			case <-p.Changed():
			case <-ctx.Done():
				t.Fatalf("node %d stuck at %d, want %d", n.id, p.HighWatermark(), hw)
			}
		}
		got := map[uint64]string{}
		for off := p.StartOffset(); off < hw; {
			bs, err := p.Read(off, 1<<20)
			if err != nil || len(bs) == 0 {
				t.Fatalf("node %d read at %d: %v", n.id, off, err)
			}
			for _, b := range bs {
				got[b.BaseOffset] = string(b.Data)
			}
			off = bs[len(bs)-1].NextOffset()
		}
		for off, data := range acked {
			if got[off] != data {
				t.Fatalf("node %d offset %d: %q, acknowledged %q", n.id, off, got[off], data)
			}
		}
	}
}

// A message larger than the receiving server's message limit (gRPC's
// default 4 MiB here) crosses in chunks, whole and in order with the
// messages around it.
func TestLargeMessageCrossesInChunks(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv, err := New(Config{NodeID: 2, Resolve: func(uint64) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	recv.RegisterService(srv)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	defer recv.Close()
	got := make(chan replication.GroupMessage, 16)
	recv.Register(2, func(from uint64, msgs []replication.GroupMessage) {
		for _, m := range msgs {
			if from == 1 {
				got <- m
			}
		}
	})
	send, err := New(Config{NodeID: 1, Resolve: func(uint64) (string, bool) { return lis.Addr().String(), true }})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()

	heartbeat := func(group uint64) replication.GroupMessage {
		return replication.GroupMessage{GroupID: group, Message: &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), To: new(uint64(2))}}
	}
	big := bigMessage(7, 5<<20+123)
	want := []replication.GroupMessage{heartbeat(1), big, heartbeat(2), bigMessage(8, chunkThreshold+1), heartbeat(3)}
	send.Send(2, want)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, w := range want {
		select {
		case m := <-got:
			if m.GroupID != w.GroupID || !proto.Equal(m.Message, w.Message) {
				t.Fatalf("message %d: group %d (%d snapshot bytes), want group %d (%d)", i, m.GroupID,
					len(m.Message.GetSnapshot().GetData()), w.GroupID, len(w.Message.GetSnapshot().GetData()))
			}
		case <-ctx.Done():
			t.Fatalf("message %d never arrived", i)
		}
	}
}

// A follower behind the leader's log start gets a snapshot over gRPC, and
// with a threshold of 256 bytes the snapshot (producer state of 60
// idempotent producers) and most appends travel in chunks: the follower
// installs it and then holds exactly the leader's records.
func TestSnapshotInChunksOverGRPC(t *testing.T) {
	old := chunkThreshold
	chunkThreshold = 256
	t.Cleanup(func() { chunkThreshold = old })
	c := &cluster{t: t, addrs: map[uint64]string{}, nodes: map[uint64]*node{}}
	small := func(hc *replication.HostConfig) {
		hc.Storage.SegmentBytes = 1024
		hc.SnapshotEntries = 10
		hc.RetentionCheck = 20 * time.Millisecond
	}
	dirs := map[uint64]string{1: t.TempDir(), 2: t.TempDir(), 3: t.TempDir()}
	open := func(id uint64) {
		c.tb = t
		n := c.startHost(id, dirs[id], 10*time.Millisecond, small)
		if _, err := n.host.OpenPartition(replication.PartitionSpec{GroupID: 1, Dir: "p1", Voters: []uint64{1, 2, 3}}); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(1); id <= 3; id++ {
		open(id)
	}
	defer func() {
		for id := uint64(1); id <= 3; id++ {
			c.stop(id)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	setRetention := func(bytes int64) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, n := range c.nodes {
			if p, ok := n.host.Partition(1); ok {
				p.UpdateConfig(replication.PartitionConfig{RetentionBytes: bytes})
			}
		}
	}
	leader := c.leader()
	var follower uint64
	c.mu.Lock()
	for id, n := range c.nodes {
		if p, _ := n.host.Partition(1); p != leader {
			follower = id
		}
	}
	c.mu.Unlock()
	c.stop(follower)
	setRetention(1)
	for i := range 60 {
		b := replication.ProduceBatch{Data: []byte(fmt.Sprintf("batch-%d", i)), Records: 1,
			ProducerID: int64(i + 1), ProducerEpoch: 0, BaseSequence: 0}
		if _, err := c.leader().Produce(ctx, b, replication.AcksAll); err != nil {
			t.Fatal(err)
		}
	}
	for c.leader().StartOffset() < 30 {
		select {
		case <-ctx.Done():
			t.Fatalf("leader start offset %d: retention did not run", c.leader().StartOffset())
		case <-time.After(5 * time.Millisecond):
		}
	}
	setRetention(0)
	open(follower)
	setRetention(0)
	lp := c.leader()
	c.mu.Lock()
	fp, _ := c.nodes[follower].host.Partition(1)
	c.mu.Unlock()
	for fp.HighWatermark() < lp.HighWatermark() {
		select {
		case <-fp.Changed():
		case <-ctx.Done():
			t.Fatalf("follower stuck at %d, want %d", fp.HighWatermark(), lp.HighWatermark())
		}
	}
	if fp.StartOffset() == 0 || fp.StartOffset() != lp.StartOffset() {
		t.Fatalf("follower starts at %d, leader at %d: no snapshot installed", fp.StartOffset(), lp.StartOffset())
	}
	read := func(p *replication.Partition) map[uint64]string {
		got := map[uint64]string{}
		for off := p.StartOffset(); off < p.HighWatermark(); {
			bs, err := p.Read(off, 1<<20)
			if err != nil || len(bs) == 0 {
				t.Fatalf("read at %d: %v", off, err)
			}
			for _, b := range bs {
				got[b.BaseOffset] = string(b.Data)
			}
			off = bs[len(bs)-1].NextOffset()
		}
		return got
	}
	want, got := read(lp), read(fp)
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("follower holds %d batches, leader %d", len(got), len(want))
	}
	for off, data := range want {
		if got[off] != data {
			t.Fatalf("offset %d: follower %q, leader %q", off, got[off], data)
		}
	}
}
