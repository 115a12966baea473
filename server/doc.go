// Package server is a Sluice node: the client gRPC API (ProducerService,
// ConsumerService, AdminService, ClusterService; GroupService and
// TransactionService answer UNSUPPORTED for now), gRPC health and server
// reflection, and an HTTP listener with /metrics, /healthz and /readyz.
//
// Handlers translate API calls into calls on the core below: the
// replication host (every partition a Raft group) and the cluster metadata
// (package cluster). This package is the only place where domain errors
// become gRPC statuses: every failure carries a google.rpc.ErrorInfo with
// domain "sluice.v1" and a reason named after sluicev1.ErrorReason (see
// errors.go); failures inside streams and per-partition results carry the
// same as a sluicev1.Error.
//
// Interceptors, outermost first: Prometheus request metrics, structured
// logging (slog), panic recovery (the stack goes to the log, the client
// gets INTERNAL), request validation (INVALID_ARGUMENT naming the field).
//
// Batches are served as stored: Fetch and Consume splice stored bytes into
// responses (batch.Splice) without decoding records. Produce validates and
// stamps a batch once (batch.Normalize) and appends it through the
// partition's Raft group with the requested acks. Retention is applied per
// partition by the replication host from each topic's retention.ms and
// retention.bytes, which the cluster metadata pushes to the replicas.
//
// Consume credit is counted in the encoded size of each pushed RecordBatch
// message (proto.Size), what the client receives; a batch larger than the
// credit left waits, and when a fresh grant still does not cover it the
// stream reports CREDIT_TOO_SMALL (with "batch_size") for that partition
// once, keeping it subscribed.
//
// Not yet: forwarding requests for partitions led by another node (the
// seam is forwardProduce; reads report NOT_LEADER), pipelining several
// batches of one partition inside a ProduceStream (batches of different
// partitions are concurrent), consumer groups and transactions.
//
// LOCKING. Server.mu guards the lifecycle fields (started, shutdown,
// listeners, ready). Handlers hold no locks of their own: the cluster
// State they read is immutable, and partitions synchronize internally.
// Each Consume call owns its stream state in its handler goroutine; one
// helper goroutine per Consume call only receives. Each ProduceStream
// call runs one sender goroutine and one goroutine per partition it
// writes to; all end before the handler returns. Every goroutine of the
// server ends in Shutdown.
package server
