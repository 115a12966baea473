// Package replication is the multi-Raft host of one node: every partition
// replica is an etcd-raft group (a RawNode) whose log is the partition's
// storage.Log — the Raft log is the data log, there is no second copy.
//
// # Moving parts
//
//   - Host owns the replicas of the node, a scheduler with a fixed pool of
//     workers (no goroutine per partition), the sync workers of the
//     durability pipeline, the Raft clock and the outbox to other nodes.
//   - The scheduler (scheduler.go) runs one pass per group at a time;
//     ticks, inbound messages, proposals and local responses set flags
//     that merge while a group waits or is processed.
//   - A pass (raftgroup.go) ticks, steps queued messages, proposes queued
//     batches and handles Ready with AsyncStorageWrites: MsgStorageAppend
//     entries are appended to the log, MsgStorageApply entries are applied
//     at once (apply.go), messages to peers go to the outbox immediately.
//   - The durability pipeline (durability.go) syncs logs through the
//     shared storage.SyncGroup (group commit across partitions) and only
//     then delivers the append responses: entries are durable before raft
//     counts them and before any producer is answered. One goroutine at a
//     time owns a partition's pipeline: the scheduler worker whose pass
//     started it (when no other group waits for a worker), the caller of
//     ProposeInline, or else a worker of a sync pool. The owner steps the
//     local acknowledgement itself when no pass runs, so for a one-voter
//     group commit, apply and the producer's answer follow the fsync on
//     the same goroutine. Term and vote are saved durably before the
//     responses that depend on them; the commit index is saved lazily (it
//     is re-learned), clamped to the durable log.
//   - Appended entries not yet applied stay in memory (entrycache.go): with
//     asynchronous storage writes raft asks Storage.Entries for an entry
//     again to apply it, and gets it without a read of the log.
//   - The partition state machine assigns offsets from the log position
//     (storage.Log.OffsetAt: the entry's Records, dense per record and equal
//     on every replica), moves the high watermark on apply, remembers the
//     last five batches of each idempotent producer (forgetting producers
//     idle past ProducerIDExpiryMs by the leaders' replicated clock, so
//     the state stays bounded) and takes snapshots of
//     that state (snapshot.go): every SnapshotEntries entries, for quick
//     restarts, and before the first entry of each segment, so retention
//     can delete the segments below. A snapshot is state, not data (next
//     offset and producers). A follower behind the log start gets the one
//     before the leader's first entry, then every entry the leader still
//     holds: it serves the same records. Sent to a replica added after it
//     was taken, it names the recipient a learner (nameRecipient).
//   - Idle groups quiesce (quiesce.go): once nothing is in flight and
//     every follower caught up, leader and followers stop ticking, so idle
//     partitions cost no heartbeats. One liveness message per pair of
//     nodes replaces per-group heartbeats; a node silent for an election
//     timeout wakes every group it hosts a replica of.
//   - Membership (membership.go): new groups are bootstrapped with
//     configuration entries, so a replica added later (ChangeReplicas,
//     learner first) learns the configuration from the log or a snapshot;
//     TransferLeadership moves leadership for balancing.
//   - Transport (transport.go) carries batched messages of all groups per
//     destination node (a pass hands each destination's messages to the
//     transport at once, on its own goroutine; the transport merges what
//     all groups queued while it wrote the previous frame); MemNetwork is the in-process network for tests
//     and can cut, delay and drop links; subpackage grpctransport is the
//     network implementation (one gRPC stream per destination node).
//
// # Entries
//
// The Data of a normal entry is a command; command.go documents the
// encoding (a versioned header: command type, proposal identity, then for
// record batches the record count, max timestamp, producer id, epoch and
// base sequence, the leader's log-append time, then the stored batch
// bytes). Empty entries are Raft's leader no-ops. Snapshot data is
// documented in producers.go.
//
// # Leadership and outcomes
//
// Only a ready leader accepts writes: one that applied the first entry of
// its own term, so every entry of its predecessors is applied and the
// idempotent producer state is complete. Followers answer
// *NotLeaderError{Leader} (definitely not written). Once proposed, a
// request ends with its result or ErrUnknownOutcome (leadership lost, the
// context ended, or the host closed before the entry applied).
//
// # Locking
//
// Per partition, three mutexes:
//
//   - Partition.raftMu guards the RawNode, the applied state machine and
//     the entry cache (raftMu fields). It is held for a whole pass — by a
//     scheduler worker, or (TryLock: never waiting for a running pass) by
//     a pipeline owner after a sync or a ProposeInline caller — and by
//     close. Methods that need it end in RaftMuLocked.
//   - Partition.mu guards what client goroutines touch: leadership as seen
//     by clients, high watermark, start offset, Changed channel, proposal
//     queues and the leader's proposal-time producer view (mu fields).
//     Methods that need it end in Locked. It is never held across I/O.
//   - Partition.syncMu guards the durability pipeline state (syncMu
//     fields): queued responses, the appended and durable marks.
//
// Partition.quiesced is an atomic (read by the ticker without locks).
//
// Order: raftMu before mu, raftMu before syncMu; mu and syncMu are never
// held together. Host.mu (an RWMutex over the partition map) may be held
// while taking a partition's mu (receive), never the reverse. The
// scheduler's and sync queue's own mutexes are leaves. The outbox's
// RWMutex is held shared across Transport.Send (from a pass, under
// raftMu) and exclusively by Host.Close; Send only queues and never calls
// back into the host, so it is a leaf too.
//
// # Goroutines
//
// Host starts and owns: the scheduler workers, the sync workers, the
// ticker (which also sends liveness messages). The outbox has no
// goroutine: passes call Transport.Send, which only queues.
// ProposeInline borrows its caller's goroutine for a pass and a sync; it
// returns when they are done. Close
// stops the ticker, then the scheduler, drains the sync workers, closes the
// outbox (no Send after that) and closes the partitions (saving their HardState), waiting for
// each; MemNetwork owns one delivery goroutine per directed link until its
// Close. No goroutine is started per partition or per request.
package replication
