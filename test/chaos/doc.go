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
// `go test ./test/chaos/` runs the short run (about a minute) when the binary
// builds; SLUICE_CHAOS=1 runs the long one. TestFailoverTime logs the time from
// SIGKILL of a partition leader to the first acknowledged produce after it.
//
// LOCKING: each type documents its own mutex; the history's mu guards its slices,
// a relay's mu guards its connections and its held state, a node's mu guards its
// current process.
package chaos
