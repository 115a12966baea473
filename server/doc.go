// Package server is a Sluice node: the client gRPC API (ProducerService,
// ConsumerService, AdminService, ClusterService, GroupService;
// TransactionService answers UNSUPPORTED for now), gRPC health and server
// reflection, and an HTTP listener with /metrics, /healthz and /readyz.
//
// Handlers translate API calls into calls on the core below: the
// replication host (every partition a Raft group), the cluster metadata
// (package cluster) and the group coordinator (package coordinator; the
// group_*.go files). This package is the only place where domain errors
// become gRPC statuses: every failure carries a google.rpc.ErrorInfo with
// domain "sluice.v1" and a reason named after sluicev1.ErrorReason (see
// errors.go); failures inside streams and per-partition results carry the
// same as a sluicev1.Error.
//
// Interceptors, outermost first: Prometheus request metrics, structured
// logging (slog), panic recovery (the stack goes to the log, the client
// gets INTERNAL), context codes (a raw context error a handler returns
// becomes Canceled or DeadlineExceeded, not Unknown), request validation
// (INVALID_ARGUMENT naming the field).
//
// Batches are served as stored: Fetch and Consume splice stored bytes into
// responses (batch.Splice) without decoding records, read with
// Partition.ReadInto into pooled buffers that are never zeroed; a Fetch or
// Consume response is encoded by hand around the stored bytes, which it
// references in the read buffers instead of copying them, and the buffers
// go back to the pool when grpc has written the message (fetchencode.go,
// servebuf.go). A produce request's records_data is decoded in place into
// a buffer with room in front (producedecode.go), where Produce validates
// and stamps the batch once (batch.NormalizeFramedIn) and builds the
// replication entry without copying the records, then appends it through
// the partition's Raft group with the requested acks. Retention is applied per
// partition by the replication host from each topic's retention.ms and
// retention.bytes, which the cluster metadata pushes to the replicas.
//
// Consume credit is counted in the encoded size of each pushed RecordBatch
// message (proto.Size), what the client receives; a batch larger than the
// credit left waits, and when a fresh grant still does not cover it the
// stream reports CREDIT_TOO_SMALL (with "batch_size") for that partition
// once, keeping it subscribed.
//
// Any node answers: a produce for a partition led elsewhere is forwarded
// to its leader (or, from a node without a replica, to the preferred
// leader), a topic change to the controller, a read of partitions of which
// this node holds no replica to a node that does; forwarded calls carry a
// marker and are never forwarded twice (forward.go). Node-level metadata
// changes (registration, producer-id blocks) go to the controller over the
// internal listener (internal.go, a hand-declared service until the
// internal API has protos), where every node also sends the controller a
// heartbeat each second. Raft traffic between nodes goes over gRPC on the
// internal listeners (replication/grpctransport) when Config.ControllerQuorum
// names the controller voters ("id@host:port", the same on every node), or
// over an injected Config.Transport: servertest runs several nodes in one
// process over replication.MemNetwork.
//
// A node outside the controller quorum joins with Config.Join (join.go):
// the controller registers it and adds it to the metadata group as a
// learner, and it is placed replicas like any node.
//
// A ProduceStream pipelines the batches of one partition: its receiver
// validates and proposes them in stream order (replication.Partition.Propose)
// and its sender answers them in order as they become durable, so many are
// in flight at once; a request that is the stream's only unanswered one is
// answered by the receiver when its outcome is known by then. The receiver
// never waits for an fsync: a pipelining client's next requests would wait
// unread behind it.
//
// Only a partition's leader knows its followers' lag, and only replicas
// know the leader: GetMetadata, DescribeTopic, DescribeCluster and the
// health metrics ask every node what it leads (internal LedPartitions) and
// merge the answers, cached for a second (leaders.go).
//
// A Consume stream reads a partition with no replica here through a feed
// that long-polls Fetch (forwarded to a replica) for it
// (consume_remote.go).
//
// Not yet: transactions.
//
// LOCKING. Server.mu guards the lifecycle fields (started, shutdown,
// listeners, ready); Server.opened publishes the core to the internal API,
// which serves while Start is still opening it. peers.mu guards the
// connections to other nodes; byteBudget.mu a ProduceStream's bytes in
// flight; leaderView.mu the cached cluster-wide view and the round in
// flight (one at a time; others wait for it); joinedPeers.mu the addresses
// a join answered; remoteFeed.mu the batches a Consume feed buffered (its
// goroutine fills, the stream's handler takes; the stream stops its feeds
// before it returns). sizedPool.mu guards the large read buffers kept out
// of the collector's reach (servebuf.go); the rest of the serving pool is
// sync.Pools, and the leases of Fetch responses waiting to be written a
// sync.Map keyed weakly by the response. Handlers hold no locks of their own: the cluster
// State they read is immutable, and partitions synchronize internally.
// Each Consume call owns its stream state in its handler goroutine; one
// helper goroutine per Consume call only receives. Each ProduceStream
// call runs one receiver and one sender goroutine, and a goroutine per
// partition for requests too large to propose on the receiver or queued
// behind others of their partition; all end before the handler returns. Every goroutine of the
// server ends in Shutdown.
package server
