package grpctransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/replication"
)

// Service and method names of the node-to-node Raft stream.
const (
	ServiceName = "sluice.internal.v1.RaftTransport"
	streamName  = "Send"
	fullMethod  = "/" + ServiceName + "/" + streamName
	codecName   = "sluice-raft-frame"
)

// StreamWindow and ConnWindow are the static HTTP/2 flow-control windows,
// per stream and per connection, of the listener that accepts the
// transport's streams (server.New sets them; the frames flow towards it)
// and of the transport's own connections.
//
// gRPC's default is a dynamic window sized by BDP estimation: the receiver
// pings the sender once per round trip while data arrives, and stops only
// once its estimate reaches 16 MiB. A connection carrying small messages
// never gets there: at 5k records/s on three nodes, those pings and their
// acks were about 40 % of a node's socket reads and writes, and 0.5 ms of
// the median end-to-end latency (docs/perf-cluster.md, seventh round). The
// static sizes are what the estimator grows a busy connection towards.
const (
	StreamWindow = 4 << 20
	ConnWindow   = 16 << 20
)

// Config configures a Transport.
type Config struct {
	// NodeID is this node's id (the sender of every frame).
	NodeID uint64
	// Resolve returns the internal address of a node (from the cluster
	// metadata); ok=false drops messages for it until it resolves.
	Resolve func(node uint64) (addr string, ok bool)
	// DialOptions for connections to other nodes (default: insecure
	// credentials; pass TLS credentials for mTLS). They follow the
	// transport's static flow-control windows (StreamWindow, ConnWindow),
	// so they may set others.
	DialOptions []grpc.DialOption
	// QueueMessages bounds the messages waiting per destination (default
	// 8192); beyond it messages are dropped, as on a congested link.
	QueueMessages int
	// Backoff after a failed connection (default 100ms).
	Backoff time.Duration
	Logger  *slog.Logger
}

// Transport is a replication.Transport over gRPC: one client stream per
// destination node carries frames of messages of all groups (everything
// queued for that node while the previous frame was written). Receiving is
// a service registered on the node's internal gRPC server.
type Transport struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		handler replication.MessageHandler
		peers   map[uint64]*peer
		closed  bool
	}
}

var _ replication.Transport = (*Transport)(nil)

// New returns a transport. Close stops it.
func New(cfg Config) (*Transport, error) {
	if cfg.NodeID == 0 || cfg.Resolve == nil {
		return nil, errors.New("grpctransport: NodeID and Resolve are required")
	}
	if cfg.QueueMessages <= 0 {
		cfg.QueueMessages = 8192
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.DialOptions) == 0 {
		cfg.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	cfg.DialOptions = append([]grpc.DialOption{
		grpc.WithStaticStreamWindowSize(StreamWindow), grpc.WithStaticConnWindowSize(ConnWindow),
	}, cfg.DialOptions...)
	t := &Transport{cfg: cfg}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = map[uint64]*peer{}
	return t, nil
}

// RegisterService adds the receiving side to a gRPC server (the node's
// internal listener).
func (t *Transport) RegisterService(s grpc.ServiceRegistrar) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    streamName,
			ClientStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				return t.serve(stream)
			},
		}},
	}, struct{}{})
}

// Register implements replication.Transport.
func (t *Transport) Register(nodeID uint64, h replication.MessageHandler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if nodeID == t.cfg.NodeID {
		t.mu.handler = h
	}
}

// Send implements replication.Transport: it queues msgs for node to and
// never blocks.
func (t *Transport) Send(to uint64, msgs []replication.GroupMessage) {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return
	}
	p := t.mu.peers[to]
	if p == nil {
		p = &peer{t: t, id: to, wake: make(chan struct{}, 1)}
		t.mu.peers[to] = p
		t.wg.Add(1)
		go p.run()
	}
	t.mu.Unlock()
	p.enqueue(msgs)
}

// Close stops the senders, closes their connections and waits.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.mu.closed = true
	t.mu.handler = nil
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
}

// serve receives frames from one peer's stream.
func (t *Transport) serve(stream grpc.ServerStream) error {
	var asm reassembly // of the message the peer sends in chunks
	for {
		var f receivedFrame
		if err := stream.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		from, msgs := f.from, f.msgs
		for _, c := range f.chunks {
			m, ok, err := asm.add(c)
			if err != nil {
				return err
			}
			if ok {
				msgs = append(msgs, m)
			}
		}
		t.mu.Lock()
		h := t.mu.handler
		t.mu.Unlock()
		if h != nil && len(msgs) > 0 {
			h(from, msgs)
		}
	}
}

// peer is the sending side toward one node.
type peer struct {
	t    *Transport
	id   uint64
	wake chan struct{}
	// chunked numbers the messages sent in chunks; owned by run.
	chunked uint64

	mu struct {
		sync.Mutex
		queue []replication.GroupMessage
	}
}

func (p *peer) enqueue(msgs []replication.GroupMessage) {
	p.mu.Lock()
	room := p.t.cfg.QueueMessages - len(p.mu.queue)
	if room < len(msgs) {
		msgs = msgs[:max(room, 0)] // congested: drop the rest, raft retries
	}
	p.mu.queue = append(p.mu.queue, msgs...)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peer) take() []replication.GroupMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.mu.queue
	p.mu.queue = nil
	return q
}

// run owns the connection and stream to the peer.
func (p *peer) run() {
	defer p.t.wg.Done()
	var conn *grpc.ClientConn
	var stream grpc.ClientStream
	var addr string
	closeConn := func() {
		if stream != nil {
			_ = stream.CloseSend()
			stream = nil
		}
		if conn != nil {
			_ = conn.Close()
			conn = nil
		}
	}
	defer closeConn()
	for {
		select {
		case <-p.t.ctx.Done():
			return
		case <-p.wake:
		}
		msgs := p.take()
		if len(msgs) == 0 {
			continue
		}
		if stream == nil {
			a, ok := p.t.cfg.Resolve(p.id)
			if !ok {
				continue // unknown address: drop
			}
			if conn == nil || a != addr {
				closeConn()
				c, err := grpc.NewClient(a, p.t.cfg.DialOptions...)
				if err != nil {
					p.t.cfg.Logger.Warn("raft transport dial", "node", p.id, "addr", a, "err", err)
					p.backoff()
					continue
				}
				conn, addr = c, a
			}
			s, err := conn.NewStream(p.t.ctx, &grpc.StreamDesc{StreamName: streamName, ClientStreams: true},
				fullMethod, grpc.CallContentSubtype(codecName))
			if err != nil {
				p.t.cfg.Logger.Debug("raft transport stream", "node", p.id, "err", err)
				p.backoff()
				continue
			}
			stream = s
		}
		for len(msgs) > 0 && stream != nil {
			// A fresh buffer per frame: gRPC may still hold the previous
			// one after SendMsg returns.
			buf, n, err := nextFrame(p.t.cfg.NodeID, msgs)
			if n == 0 && err == nil { // msgs[0] is too large for one frame
				err = p.sendChunks(stream, msgs[0])
				msgs = msgs[1:]
			} else {
				msgs = msgs[n:]
				if err != nil {
					p.t.cfg.Logger.Error("raft transport encode", "node", p.id, "err", err)
					continue
				}
				err = stream.SendMsg(frameBytes(buf))
			}
			if err != nil {
				// The rest is lost; raft retries. Reconnect on the next frame.
				p.t.cfg.Logger.Debug("raft transport send", "node", p.id, "err", err)
				stream = nil
				p.backoff()
			}
		}
	}
}

// frameTarget bounds a frame's size. A message larger than chunkThreshold
// travels in chunks (sendChunks), so a frame is never much larger.
const frameTarget = 2 << 20

// nextFrame encodes the first n messages of msgs that fit in one frame into
// a buffer of exactly the frame's size. Every message is sized once and
// marshalled once, directly into that buffer. It stops before a message
// larger than chunkThreshold, and returns n == 0 when msgs[0] is one.
func nextFrame(from uint64, msgs []replication.GroupMessage) (buf []byte, n int, err error) {
	sizes := make([]int, 0, min(len(msgs), 64))
	total := protowire.SizeTag(frameFrom) + protowire.SizeVarint(from)
	for i, m := range msgs {
		s := proto.Size(m.Message)
		if s > chunkThreshold {
			break
		}
		e := frameEntrySize(m, s)
		if total+e > frameTarget && i > 0 {
			break
		}
		total += e
		sizes = append(sizes, s)
	}
	n = len(sizes)
	if n == 0 {
		return nil, 0, nil
	}
	buf = make([]byte, 0, total)
	buf = protowire.AppendTag(buf, frameFrom, protowire.VarintType)
	buf = protowire.AppendVarint(buf, from)
	for i, m := range msgs[:n] {
		if buf, err = appendEnvelope(buf, m, sizes[i]); err != nil {
			return nil, n, err
		}
	}
	return buf, n, nil
}

// sendChunks sends m, which is larger than chunkThreshold, as a run of
// frames of one chunk each: it is marshalled once, and each frame sends a
// slice of it after a small head, without copying it again. The receiver
// delivers m once the last chunk arrived (reassembly).
func (p *peer) sendChunks(stream grpc.ClientStream, m replication.GroupMessage) error {
	size := proto.Size(m.Message)
	data, err := cachedSize.MarshalAppend(make([]byte, 0, size), m.Message)
	if err != nil {
		p.t.cfg.Logger.Error("raft transport encode", "node", p.id, "err", err)
		return nil // this message is lost; the stream is fine
	}
	if len(data) > maxChunkedMessage {
		p.t.cfg.Logger.Error("raft transport: message too large to send", "node", p.id, "group", m.GroupID, "bytes", len(data))
		return nil
	}
	p.chunked++
	for off := 0; off < len(data); off += chunkThreshold {
		c := chunk{group: m.GroupID, id: p.chunked, offset: uint64(off), total: uint64(len(data)),
			data: data[off:min(off+chunkThreshold, len(data))]}
		if err := stream.SendMsg(chunkFrame{head: chunkHead(p.t.cfg.NodeID, c), data: c.data}); err != nil {
			return err
		}
	}
	return nil
}

func (p *peer) backoff() {
	select {
	case <-p.t.ctx.Done():
	case <-time.After(p.t.cfg.Backoff):
	}
	// Messages queued meanwhile are stale for raft but harmless; keep them
	// and make sure the loop runs again.
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// frameBytes is an encoded frame; the codec passes it through.
type frameBytes []byte

// chunkFrame is an encoded frame of one chunk: head (chunkHead) then the
// chunk's data, which the codec sends without joining them.
type chunkFrame struct{ head, data []byte }

// receivedFrame is a frame decoded by the codec straight from gRPC's
// receive buffers: the messages' bytes are copied once, by their
// unmarshal, and the frame itself is never gathered into a copy of its
// own unless it arrived split across several buffers.
type receivedFrame struct {
	from   uint64
	msgs   []replication.GroupMessage
	chunks []chunk
}

type frameCodec struct{}

var _ encoding.CodecV2 = frameCodec{}

func (frameCodec) Name() string { return codecName }

func (frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch f := v.(type) {
	case frameBytes:
		return mem.BufferSlice{mem.SliceBuffer(f)}, nil
	case *frameBytes:
		return mem.BufferSlice{mem.SliceBuffer(*f)}, nil
	case chunkFrame:
		return mem.BufferSlice{mem.SliceBuffer(f.head), mem.SliceBuffer(f.data)}, nil
	}
	return nil, fmt.Errorf("grpctransport: cannot marshal %T", v)
}

func (frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	// b is valid until we return; decodeFrame copies what it keeps.
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		bp := gatherBuf(data)
		defer releaseGatherBuf(bp)
		b = *bp
	}
	switch f := v.(type) {
	case *receivedFrame:
		dec, err := decodeFrame(b)
		if err != nil {
			return err
		}
		*f = dec
		return nil
	case *frameBytes:
		*f = append((*f)[:0], b...)
		return nil
	}
	return fmt.Errorf("grpctransport: cannot unmarshal into %T", v)
}

func init() { encoding.RegisterCodecV2(frameCodec{}) }

// gatherPool holds the buffers a frame received in several gRPC buffers is
// gathered into for decoding. Decoding copies what it keeps, so a buffer is
// reused for the next frame instead of allocating (and zeroing) up to
// frameTarget bytes per frame.
var gatherPool sync.Pool // *[]byte

// maxPooledGather bounds the buffers kept in gatherPool (a frame is about
// frameTarget at most: larger messages travel in chunks).
const maxPooledGather = 2 * frameTarget

func gatherBuf(data mem.BufferSlice) *[]byte {
	bp, _ := gatherPool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := (*bp)[:0]
	for _, d := range data {
		b = append(b, d.ReadOnlyData()...)
	}
	*bp = b
	return bp
}

func releaseGatherBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledGather {
		gatherPool.Put(bp)
	}
}
