// Package cluster owns a node's cluster metadata: the cluster id, the
// nodes, the topics with their configuration and partition placement, and
// the producer-id blocks.
//
// The metadata lives in a log, KRaft style: the internal partition
// __cluster_metadata is a Raft group (MetadataGroupID) opened through the
// replication host with the controller voters (on a one-node cluster, the
// node itself). A change is a command appended to that partition with
// acks=all by the controller (the group's leader); every node applies the
// committed records in order to an in-memory State, so every node holds the
// same metadata at the same offset. The record format is documented in
// command.go.
//
// Each node reconciles its partition replicas toward the State: it opens
// the replicas placed on it, pushes configuration changes to them, and
// removes the replicas (and their data) the State no longer places on it.
// Until its registration is applied (a barrier: the State is then at least
// as new as the node's replicas) it only opens replicas, from the metadata
// log it replayed at start: when the whole cluster restarts, each node's
// replicas can elect leaders while the registrations wait for a controller.
// Place spreads replicas and preferred leaders over the nodes (and racks);
// the preferred leader of a new partition campaigns at once (until an
// election is under way: repeating a campaign would abort it), and another
// replica that wins the first election anyway (it opened earlier) hands
// the leadership to the preferred one once it has caught up, so the first
// leaders follow the placement.
//
// Topic configuration: every key of admin.proto's TopicConfig is validated
// and stored; retention.ms, retention.bytes, segment.bytes and
// message.timestamp.type reach the partitions, max.message.bytes is
// enforced by the server on produce. segment.ms is stored but not applied
// per topic (segments roll by the node's settings), min.insync.replicas is
// stored for the day acks=all counts replicas, and cleanup.policy=compact
// is refused until compaction exists.
//
// A node that is not the controller hands node-level changes (its
// registration, producer-id blocks) to the controller through
// Config.Forward; topic changes there fail with *NotControllerError naming
// the controller, and the server routes those API calls to it.
//
// A node outside the controller quorum joins through AddNode (join.go) on
// the controller: registered, then added to the metadata group as a
// learner, it opens its metadata replica with Config.Join and receives the
// log.
//
// Replicas move (reassign.go): ReassignPartition and DecommissionNode set
// a partition's Target; its Raft leader adds the new replicas as learners,
// promotes them once caught up, removes the old ones, then records the
// move done. BalanceLeaders (balance.go, also periodic) hands leadership
// to preferred leaders. Decommissioned nodes get no new replicas; once
// their replicas have moved away the controller takes them out of the
// registry (decommission.go), except voters of the metadata group.
//
// Liveness is the controller's: a node is alive while the controller hears
// from it, through the metadata group (voters) or heartbeats (Heard, sent
// by the server); placement only uses live nodes.
//
// Snapshots (snapshot.go): every SnapshotEvery records the controller
// appends a snapshot record holding the whole State, then deletes the
// metadata log below it; a node that restarts or lags behind the new log
// start reads the snapshot first. A replica that joins once whole
// segments are deleted starts from a Raft snapshot of the partition, at a
// segment end at or before the snapshot record, and skips the records
// before that record (applyLoop).
//
// LOCKING. Metadata.mu guards the published State (immutable once
// published; readers share it), the change channels, the rejected-command
// outcomes, the reconciled offset, the local producer-id block, the
// partitions waiting to campaign and the heartbeat times.
// The mover and balance loops hold no lock of their own: they read the
// immutable State and call the partitions, which synchronize internally.
// Metadata.proposeMu serializes proposals so each is validated against the
// state that includes every earlier proposal; it is taken before mu, never
// while holding it. The apply, reconcile and campaign loops are the
// package's goroutines; all stop in Close.
package cluster
