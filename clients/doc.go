// Package clients is the Go client library of Sluice: a Producer, a Consumer and an
// Admin over the v1 gRPC API. It imports only the generated API (gen/sluice/v1) and the
// batch wire format (batch); it never reaches into the server.
//
// # Options
//
// Constructors take functional options grouped by client: Opt values (Brokers,
// DialOptions, Logger, RequestTimeout, RetryBackoff, MetadataMaxAge) apply to any
// client; ProducerOpt (Linger, MaxBatchBytes, MaxInflightPerPartition, Compression, Acks,
// DisableIdempotence, ManualPartitioning, MaxBufferedRecords, DeliveryTimeout,
// ProduceTimeout, UnaryProduce) and ConsumerOpt (ConsumePartitions, FetchMaxWait,
// FetchMinBytes, FetchMaxBytes, FetchMaxPartitionBytes, ReadCommitted, StrictOffsets,
// ReuseRecordMemory) only to theirs.
//
// # Producer
//
// Produce is asynchronous: the record is placed in its partition's open batch and its
// promise is called once the batch is acknowledged (Partition and Offset filled in) or
// has failed. ProduceSync produces several records and returns their ProduceResults
// (FirstErr). Flush sends everything buffered and waits; Close fails what is still
// buffered with ErrClosed (Flush first to deliver it).
//
// Partitioning: a record with a key goes to batch.KeyPartition(key, n), where Kafka's
// default partitioner puts it (murmur2); an empty key counts as no key, since the wire
// cannot tell them apart. Records without a key stick to one partition until
// StickyPartitionBytes (16 KiB) went to it and the batch they fill is sent, then move on
// (Kafka's sticky partitioner, KIP-794), so unkeyed records batch well even when
// batches are sent early. They move to a partition with the fewest batches in flight or
// queued (at random among those, as Kafka's adaptive partitioning; among 16 sampled ones
// in larger topics), so they neither wait behind a request still out nor pile up on a
// slow leader. ManualPartitioning uses
// Record.Partition.
//
// Batching: each partition has an open batch encoded as records are produced
// (batch.Builder). It becomes ready when it reaches MaxBatchBytes, when Linger passes
// after its first record, on Flush/ProduceSync, or at once with Linger(0). A ready batch
// is compressed (Compression) and sent when its partition has nothing in flight, or,
// once no more records fit in it, when the partition has fewer than
// MaxInflightPerPartition batches in flight. Records arriving while a batch with room
// waits join it: a partition whose batches do not fill sends one request per round
// trip, each carrying what arrived during the last one (one Raft entry and one fsync
// per replica for all of them), and a partition whose batches fill pipelines them. A
// batch with room also goes once the request before it has been out for twice the
// partition's average round trip: behind a slow answer (a slow fsync) its records are
// replicated meanwhile instead of waiting for that answer and a round trip of their own.
//
// Transport: the producer sends straight to partition leaders (ClusterService.GetMetadata
// maps partitions to node addresses) over one ProducerService.ProduceStream per node.
// The stream pipelines batches of all partitions the node leads and answers in order, so
// several batches of a partition can be in flight while per-partition order holds; a
// unary call per batch would either serialize each partition on a round trip or let
// concurrent calls reach the leader out of order (with idempotence, a sequence error and
// a retry). A server that answers UNIMPLEMENTED on the stream, or UnaryProduce, makes the
// producer use unary Produce with one batch in flight per partition.
//
// Retries: a batch is retried with exponential backoff and jitter (RetryBackoff) while
// the DeliveryTimeout allows, only for the reasons in its google.rpc.ErrorInfo that say
// the batch can be sent again: NOT_LEADER (the metadata "leader"/"leader_address" hint
// moves the partition to the new leader at once; without a hint metadata is refreshed),
// LEADER_NOT_AVAILABLE and NODE_UNAVAILABLE (metadata refresh), NOT_WRITTEN, and, for an
// idempotent producer only, UNKNOWN_OUTCOME and broken streams. Every other error reaches
// the promise as an *Error.
//
// A node that stops answering (a paused process, a half-open connection) cannot hold
// batches forever: a produce request with no answer within RequestTimeout (Kafka's
// request.timeout.ms, default 30 s) fails its stream, its batches count as outcome unknown
// and are retried after a metadata refresh (safely: their sequence numbers are kept), and
// connections ping after 10 s of silence and close when a ping gets no answer in 5 s.
// Brokers that just timed out are tried last for metadata.
//
// Idempotence (the default): the producer obtains a producer id with InitProducer and
// numbers each partition's records; a retried batch keeps its sequence, so the partition
// writes it once. A batch the server refuses leaves no gap: later batches of the
// partition move down. A server answering UNIMPLEMENTED to InitProducer makes the
// producer non-idempotent (logged once).
//
// # Consumer
//
// A Consumer reads assigned partitions (Assign, AssignTopic, ConsumePartitions) from a
// start Offset: AtStart, AtEnd, At(offset) or AfterTime(t), resolved with ListOffsets.
// Poll long-polls Fetch at every leader at once (RECORD_FORMAT_STORED), returns when
// records arrive, and decodes batches itself: plain records straight from the received
// frames into Records whose keys and values alias the frames, each batch's CRC checked
// once; compressed batches are decompressed and checked here (batch.Records). With
// ReuseRecordMemory the frames of a Poll's records are read into again from the next
// Poll on, saving the allocation (and zeroing) of every fetched byte. A fetch that has not answered when Poll returns
// stays in flight and a later Poll takes its answer, so records from one leader do not
// cut short the long polls at the others. A fetch that lands with records starts the
// fetch of what follows them at once, so the next records are on their way while the
// application handles these (at most two answers per partition wait for a Poll; one
// fetched ahead of a Seek is dropped). Seek moves a partition. An offset out of range moves
// to the nearest end of the log unless StrictOffsets. Partition failures come back as
// *PartitionError and stop that partition until it is sought again.
//
// # Group consumer
//
// A GroupConsumer is a member of a consumer group (GroupConfig: topics or a pattern,
// static instance id, assignor, session timeout, commit mode, callbacks). The group's
// coordinator assigns partitions and moves them incrementally; the member fetches its
// partitions like a Consumer and commits processed positions, automatically (the records
// of a Poll count as processed when Poll is called again) or with Commit /
// CommitOffsets. A revoked partition stops at once (Poll returns no more of its
// records) and is handed over once the application has polled again: its positions are
// committed, OnRevoked runs, and the revocation is confirmed. Delivery is at-least-once.
// Close commits, leaves the group (a static member keeps its place until its session
// times out) and waits for the membership goroutine.
//
// # Admin
//
// Admin wraps AdminService and ClusterService: CreateTopic, DeleteTopic, ListTopics,
// DescribeTopic, AddPartitions, AlterTopicConfig, ListOffsets, DeleteRecords, Metadata,
// DescribeCluster.
//
// # Errors
//
// Server failures are *Error{Code, Reason, Message, Metadata}, decoded from the status's
// google.rpc.ErrorInfo (or a stream's Error message). errors.Is(err, ErrUnknownTopic)
// and the other sentinels match on the reason; IsRetriable and ReasonOf help decide.
// Nothing in this package looks at message text.
//
// # Goroutines and locking
//
// A Producer owns: a router goroutine (places partitions on their leaders' sinks,
// refreshing metadata with backoff), one sink goroutine per leader node (takes ready
// batches and writes them to the stream), one receiver goroutine per open stream
// (matches responses to batches in flight), and, in unary mode, one goroutine per call in
// flight. A ProduceSync of one record whose partition has nothing in flight takes and
// sends the ready batches itself instead of waking the sink's goroutine, counted in the
// producer's WaitGroup meanwhile. Close cancels them all and waits. Linger and backoff use time.AfterFunc timers
// that only poke a sink. Promises run on the receiver (or unary call) goroutine, in order
// per partition; a promise must not call Flush, ProduceSync or Close.
//
// sink.sendMu is held from taking a sink's ready batches to the last Send of them, by
// the sink's goroutine or a ProduceSync caller, so batches reach the stream in the
// order they were taken; it is taken before Producer.mu, never while holding it.
// Producer.mu guards all producer state: partitions (partBuf: batches, in-flight count,
// sink, sequences), sinks' partition lists and streams, the buffered count and flush
// waiters, and the producer id. Methods that need it held end in Locked. Records are
// encoded into their batch's Builder under it (Produce); a sealed batch is compressed
// by the goroutine sending it, outside it (encode). Producer.idMu serializes InitProducer. cluster.mu guards
// connections and cached metadata; the lock order is Producer.mu, then cluster.mu
// (cluster never calls back). Consumer.pollMu serializes Poll and guards the replies a
// Poll lent out (ReuseRecordMemory); Consumer.mu guards assignments, positions and the
// fetches in flight, and is never held across a call to the server. A chunkPool's mu
// guards its current chunk, free chunks and the frames out of each (framepool.go);
// nothing is called with it held. Each fetch runs on a goroutine owned by the Consumer
// (not by the Poll that started it); Close cancels them and waits. Admin holds no state besides its cluster.
// A GroupConsumer owns one membership goroutine (the Membership stream, its reader
// goroutine, heartbeats, automatic commits, callbacks), stopped by Close;
// GroupConsumer.mu guards the member id, epoch, coordinator address and the owned,
// revoking, handed, processed and committed partition sets, and is never held across a
// call to the server or a callback.
package clients
