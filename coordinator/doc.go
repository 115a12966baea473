// Package coordinator runs consumer groups: membership, server-side
// assignment with incremental cooperative rebalancing (Kafka's KIP-848),
// and committed offsets.
//
// Group (group.go) is the state machine of one group, pure and clocked by
// its caller. Members join with a subscription (topic names and/or an RE2
// pattern) and optionally an instance id (static membership). Every
// membership, subscription or topic change bumps the group epoch and
// recomputes the target assignment with the group's assignor (range,
// round-robin, or uniform sticky, the default: balanced, moving as few
// partitions as possible). Reconciliation then moves each member toward its
// target one safe step at a time: partitions a member must give up are
// sent to it as revoking (its other partitions untouched), and go to their
// new owner only after the member confirms (having committed) or leaves.
// A partition therefore never has two owners, and members that keep their
// partitions never stop. Each member has an epoch, bumped whenever its
// assignment grows; a commit is accepted only from a member that owns the
// partition since an epoch no later than the one it sends, which fences
// zombies (an old stream of a restarted static member, a member that
// lost and regained a partition). A closed stream is a leave for a dynamic
// member; a static member keeps its place until its session times out.
//
// Coordinator (coordinator.go) hosts groups on a node. Groups are spread
// over the partitions of the internal topic __consumer_offsets (created on
// first use; by default one partition per live node), by Kafka's murmur2
// hash of the group id; a group's coordinator is the leader of its
// partition. Every change of a group (membership, assignment, offsets) is
// appended to that partition as records (records.go) before members hear
// of it, and a node that becomes leader rebuilds its groups by replaying
// the partition up to a load marker it writes first. Since the storage
// layer does not compact yet, the coordinator keeps its partitions short:
// past Config.CheckpointRecords it rewrites the live state and deletes the
// records before it (checkpoint.go), so a rebuild reads the live state, not
// the history. Members on a node
// that loses leadership are told NOT_COORDINATOR and rejoin the new
// coordinator with their member id and epoch, keeping their partitions.
//
// LOCKING. Coordinator.mu guards the map of loaded shards and the closed
// flag. Each shard's mu guards its groups (and every Group in it), the
// member streams attached to them, and the order of its writes to the log:
// a change is applied, written (under mu, so records are in the log in the
// order they were made) and then published to member streams. shard.mu is
// never held while taking Coordinator.mu. A Session's own mu guards only its
// pending assignment. Goroutines: the coordinator's watch loop (leadership,
// topic changes, session expiry), one loader per shard while it loads;
// all stop in Close.
package coordinator
