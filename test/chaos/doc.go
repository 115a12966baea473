// Package chaos runs a three-node Sluice cluster of separate `sluice server`
// processes on loopback (127.0.0.1, 127.0.0.2 and 127.0.0.3) under a randomized
// produce/consume workload while it injects faults, then checks the recorded
// history.
//
// Faults: SIGKILL and restart of partition leaders and followers, SIGSTOP/SIGCONT
// of leaders and followers, network partitions of one node from the others, and a
// follower restarted after the leaders' retention moved the log start past it, so
// it catches up through a snapshot.
//
// Partitions act on the node-to-node (Raft) links. Every directed link i->j goes
// through a small TCP relay owned by the test: node i's --controller-quorum names
// node j at the relay's address on 127.0.0.i, and the relay dials node j's internal
// listener from 127.0.0.i. A partition either holds the relay's bytes (every
// platform) or, when the test runs as root with iptables, installs DROP rules on
// the relay-to-node hop (127.0.0.i -> 127.0.0.j:internal port) in a chain of its
// own. Client calls a node forwards to a leader use the client API addresses and
// are not cut.
//
// The checker (checker_test.go) verifies: no acknowledged record is lost; no
// record appears twice (the producer is idempotent); every offset holds the same
// record in every read and on every replica; records of one producer in one
// partition are in the order produced; no consumer saw a record that is later gone
// or changed.
//
// `go test ./test/chaos/` runs the short runs (about a minute and a half) when the
// server builds: TestChaosShort (every fault kind once, partitions by relay),
// TestRestartCatchesUpThroughSnapshot, and TestIPTablesPartitionShort when root
// with iptables (skipped otherwise). SLUICE_CHAOS=1 runs the long ones instead:
// TestChaosLong (SLUICE_CHAOS_FAULTS faults, default 36, iptables partitions when
// possible), TestKillEveryNodeLong, and the measurements TestFailoverTime and
// TestPauseFailoverTime, which log the time from SIGKILL (SIGSTOP) of a partition
// leader to the first acknowledged produce after it, ten times with the median.
// The measurements also run when named: go test -run FailoverTime -v ./test/chaos/.
// TestRestartAllTime (the same way) measures a whole-cluster restart: SIGTERM to
// every node, start them together, until each of 6 partitions acknowledged a record.
//
// SLUICE_CHAOS_BINARY runs a binary built beforehand instead of building one;
// SLUICE_CHAOS_DIR keeps the nodes' data and logs (node<id>.log) under that
// directory instead of a temporary one. Every process, relay and iptables rule is
// removed when a test ends.
//
// LOCKING: each type documents its own mutex; the history's mu guards its slices,
// a relay's mu guards its connections and its held state, a node's mu guards its
// current process.
package chaos
