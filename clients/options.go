package clients

import (
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	sluicev1 "github.com/sluicehq/sluice/gen/sluice/v1"
)

// config holds every option; each constructor reads the part that concerns it.
type config struct {
	brokers        []string
	dialOpts       []grpc.DialOption
	logger         *slog.Logger
	requestTimeout time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	metadataMaxAge time.Duration

	// producer
	linger          time.Duration
	maxBatchBytes   int
	stickyBytes     int
	maxInflight     int
	compression     sluicev1.Compression
	acks            sluicev1.Acks
	idempotent      bool
	manualPartition bool
	maxBuffered     int
	deliveryTimeout time.Duration
	produceTimeout  time.Duration
	unaryProduce    bool

	// consumer
	assign        map[string]map[int32]Offset
	fetchMaxWait  time.Duration
	fetchMinBytes int32
	fetchMaxBytes int32
	partMaxBytes  int32
	readCommitted bool
	strictOffsets bool
	reuseRecords  bool
}

func defaults() config {
	return config{
		brokers:         []string{"127.0.0.1:9700"},
		logger:          slog.New(slog.DiscardHandler),
		requestTimeout:  30 * time.Second,
		backoffMin:      50 * time.Millisecond,
		backoffMax:      2 * time.Second,
		metadataMaxAge:  5 * time.Minute,
		linger:          5 * time.Millisecond,
		maxBatchBytes:   1 << 20,
		stickyBytes:     16 << 10,
		maxInflight:     5,
		compression:     sluicev1.Compression_COMPRESSION_NONE,
		acks:            sluicev1.Acks_ACKS_ALL,
		idempotent:      true,
		maxBuffered:     10000,
		deliveryTimeout: 2 * time.Minute,
		fetchMaxWait:    500 * time.Millisecond,
		fetchMinBytes:   1,
		fetchMaxBytes:   16 << 20,
		partMaxBytes:    1 << 20,
	}
}

// Keepalive of client connections: a connection that has received nothing for
// keepaliveTime is pinged, and closed when the ping is not answered within
// keepaliveTimeout, failing the calls and streams on it. It finds a node whose process
// is paused or whose host vanished while the TCP connection looks open. 10s is the
// shortest interval gRPC allows a client and what the server permits
// (keepalive.EnforcementPolicy MinTime in server/server.go); pings are only sent while
// calls or streams are open.
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
)

// readBufferSize is the connection's read buffer. gRPC reads the socket through it
// and copies each HTTP/2 frame out of it; at gRPC's default (32 KiB) a fetch of
// many MB took a read(2) per two 16 KiB frames. With 256 KiB a consumer reading
// 614 MB from three nodes used 5–7 % less CPU (docs/perf-cluster.md, fifth round).
// DialOptions can set another size.
const readBufferSize = 256 << 10

// streamWindow and connWindow are the connection's static HTTP/2 flow-control
// windows, per stream and per connection. gRPC's default is a dynamic window sized
// by BDP estimation, which pings the server once per round trip while data flows
// and stops only once its estimate reaches 16 MiB: a connection carrying a produce
// or consume stream of small batches never gets there. At 5k records/s on three
// nodes, those pings and their acks were about 40 % of the nodes' socket reads and
// writes (docs/perf-cluster.md, seventh round). The static sizes are what the
// estimator grows a busy connection towards. DialOptions can set others.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
)

func (c *config) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.WithReadBufferSize(readBufferSize),
		grpc.WithStaticStreamWindowSize(streamWindow), grpc.WithStaticConnWindowSize(connWindow),
	}
	return append(opts, c.dialOpts...)
}

// serverProduceTimeout is the timeout_ms of produce requests: ProduceTimeout, or the
// request timeout (what Kafka's producer sends), so the server stops waiting about
// when the client does.
func (c *config) serverProduceTimeout() time.Duration {
	if c.produceTimeout > 0 {
		return c.produceTimeout
	}
	return c.requestTimeout
}

// produceRequestTimeout is how long the producer waits for the answer to one produce
// request before it counts the outcome unknown: the request timeout, or a second more
// than a longer ProduceTimeout (the server answers first when it can).
func (c *config) produceRequestTimeout() time.Duration {
	return max(c.requestTimeout, c.produceTimeout+time.Second)
}

// Opt is an option for any client (Producer, Consumer or Admin).
type Opt interface {
	ProducerOpt
	ConsumerOpt
	AdminOpt
}

// ProducerOpt configures a Producer.
type ProducerOpt interface{ applyProducer(*config) }

// ConsumerOpt configures a Consumer.
type ConsumerOpt interface{ applyConsumer(*config) }

// AdminOpt configures an Admin.
type AdminOpt interface{ applyAdmin(*config) }

type commonOpt func(*config)

func (o commonOpt) applyProducer(c *config) { o(c) }
func (o commonOpt) applyConsumer(c *config) { o(c) }
func (o commonOpt) applyAdmin(c *config)    { o(c) }

type producerOpt func(*config)

func (o producerOpt) applyProducer(c *config) { o(c) }

type consumerOpt func(*config)

func (o consumerOpt) applyConsumer(c *config) { o(c) }

// Brokers sets the addresses (host:port) used to discover the cluster; any node will do.
// Default 127.0.0.1:9700.
func Brokers(addrs ...string) Opt {
	return commonOpt(func(c *config) { c.brokers = append([]string(nil), addrs...) })
}

// DialOptions adds gRPC dial options (TLS credentials, interceptors, a custom dialer).
// The default transport is plaintext; a WithTransportCredentials here replaces it.
func DialOptions(opts ...grpc.DialOption) Opt {
	return commonOpt(func(c *config) { c.dialOpts = append(c.dialOpts, opts...) })
}

// Logger sets the logger; nil (the default) discards.
func Logger(l *slog.Logger) Opt {
	return commonOpt(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// RequestTimeout bounds each request: metadata and admin calls, and each produce
// request in flight (default 30s, Kafka's request.timeout.ms). A produce request with no
// answer by then fails its node's stream (the node may be paused or cut off: the
// connection's keepalive takes 10 to 15 seconds to notice); its batches have an unknown
// outcome and are retried after a metadata refresh, which the idempotent producer's
// sequence numbers make safe (a non-idempotent producer fails them with
// UNKNOWN_OUTCOME). Unless ProduceTimeout is set, it is also the server-side timeout
// of produce requests.
func RequestTimeout(d time.Duration) Opt {
	return commonOpt(func(c *config) { c.requestTimeout = d })
}

// RetryBackoff sets the exponential backoff between retries, from min doubling to max
// (default 50ms to 2s), with jitter.
func RetryBackoff(min, max time.Duration) Opt {
	return commonOpt(func(c *config) { c.backoffMin, c.backoffMax = min, max })
}

// MetadataMaxAge is how long cached topic metadata (partition count and leaders) is
// used before it is loaded again (default 5 minutes); leader changes reported by the
// server refresh it sooner.
func MetadataMaxAge(d time.Duration) Opt {
	return commonOpt(func(c *config) { c.metadataMaxAge = d })
}

// Linger is how long a partition's batch waits for more records before it is sent
// (default 5ms). With 0 a batch is sent as soon as the partition has room in flight;
// records that arrive meanwhile still batch up.
func Linger(d time.Duration) ProducerOpt {
	return producerOpt(func(c *config) { c.linger = d })
}

// MaxBatchBytes caps a batch's encoded size before compression (default 1 MiB). Keep it
// under the topic's max.message.bytes. A record larger than this goes alone in a batch.
func MaxBatchBytes(n int) ProducerOpt {
	return producerOpt(func(c *config) { c.maxBatchBytes = n })
}

// MaxInflightPerPartition caps the batches of one partition sent and not yet
// acknowledged (default 5). Only full batches go while another of the partition is in
// flight; a batch with room waits and keeps filling (see the package doc's Batching).
// Order within a partition is kept whatever the value.
func MaxInflightPerPartition(n int) ProducerOpt {
	return producerOpt(func(c *config) { c.maxInflight = max(n, 1) })
}

// Compression sets the codec for batches (default none).
func Compression(codec sluicev1.Compression) ProducerOpt {
	return producerOpt(func(c *config) { c.compression = codec })
}

// Acks sets the acknowledgement level (default ACKS_ALL).
func Acks(a sluicev1.Acks) ProducerOpt {
	return producerOpt(func(c *config) { c.acks = a })
}

// DisableIdempotence turns off the idempotent producer (on by default): batches carry no
// producer id, and a batch whose outcome is unknown fails instead of being retried.
func DisableIdempotence() ProducerOpt {
	return producerOpt(func(c *config) { c.idempotent = false })
}

// ManualPartitioning makes the producer send each record to Record.Partition instead of
// choosing (by key hash, or sticky for records without a key).
func ManualPartitioning() ProducerOpt {
	return producerOpt(func(c *config) { c.manualPartition = true })
}

// StickyPartitionBytes sets how many bytes of records without a key go to one
// partition before the producer may move them to another (default 16 KiB, Kafka's
// batch.size; KIP-794). Past it, the producer moves on once the batch it was filling is
// sent, to the partition with the fewest batches outstanding. 0 moves on after every
// sent batch.
func StickyPartitionBytes(n int) ProducerOpt {
	return producerOpt(func(c *config) { c.stickyBytes = max(n, 0) })
}

// MaxBufferedRecords caps records produced and not yet acknowledged (default 10000);
// Produce blocks while the cap is reached.
func MaxBufferedRecords(n int) ProducerOpt {
	return producerOpt(func(c *config) { c.maxBuffered = max(n, 1) })
}

// DeliveryTimeout bounds how long a record may take, retries included, before its
// promise fails (default 2 minutes).
func DeliveryTimeout(d time.Duration) ProducerOpt {
	return producerOpt(func(c *config) { c.deliveryTimeout = d })
}

// ProduceTimeout is the server-side timeout of each produce request (timeout_ms; default
// 0: the RequestTimeout). The producer waits a second longer than it for an answer when
// it exceeds the RequestTimeout.
func ProduceTimeout(d time.Duration) ProducerOpt {
	return producerOpt(func(c *config) { c.produceTimeout = d })
}

// UnaryProduce sends batches with the unary Produce call instead of one ProduceStream per
// node (one batch in flight per partition). The producer also falls back to it when a
// server does not implement ProduceStream.
func UnaryProduce() ProducerOpt {
	return producerOpt(func(c *config) { c.unaryProduce = true })
}

// ConsumePartitions assigns partitions with their start positions at construction, as
// Consumer.Assign does.
func ConsumePartitions(assign map[string]map[int32]Offset) ConsumerOpt {
	return consumerOpt(func(c *config) {
		if c.assign == nil {
			c.assign = make(map[string]map[int32]Offset)
		}
		for t, ps := range assign {
			if c.assign[t] == nil {
				c.assign[t] = make(map[int32]Offset)
			}
			for p, o := range ps {
				c.assign[t][p] = o
			}
		}
	})
}

// FetchMaxWait is how long a fetch waits on the server for data (default 500ms).
func FetchMaxWait(d time.Duration) ConsumerOpt {
	return consumerOpt(func(c *config) { c.fetchMaxWait = d })
}

// FetchMinBytes is how many bytes a fetch waits for (default 1).
func FetchMinBytes(n int32) ConsumerOpt {
	return consumerOpt(func(c *config) { c.fetchMinBytes = n })
}

// FetchMaxBytes caps a fetch response (default 16 MiB) and FetchMaxPartitionBytes each
// partition in it (default 1 MiB).
func FetchMaxBytes(n int32) ConsumerOpt {
	return consumerOpt(func(c *config) { c.fetchMaxBytes = n })
}

// FetchMaxPartitionBytes caps the bytes fetched per partition (default 1 MiB).
func FetchMaxPartitionBytes(n int32) ConsumerOpt {
	return consumerOpt(func(c *config) { c.partMaxBytes = n })
}

// ReadCommitted reads only committed transactional records.
func ReadCommitted() ConsumerOpt {
	return consumerOpt(func(c *config) { c.readCommitted = true })
}

// StrictOffsets makes Poll return OFFSET_OUT_OF_RANGE errors. By default a position
// outside the log moves to the nearest end: the log start when below it, the high
// watermark when past it.
func StrictOffsets() ConsumerOpt {
	return consumerOpt(func(c *config) { c.strictOffsets = true })
}

// ReuseRecordMemory lets a Consumer (or GroupConsumer) read new records into the memory
// of the records its previous Poll returned: the Key, Value and header values of
// records are valid only until the next Poll (or Close). Without it, every fetched byte
// lands in memory allocated and zeroed for it and left to the garbage collector; a
// consumer that is done with each Poll's records before the next one (copying what it
// keeps) reads with less work with it.
func ReuseRecordMemory() ConsumerOpt {
	return consumerOpt(func(c *config) { c.reuseRecords = true })
}
