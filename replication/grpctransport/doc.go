// Package grpctransport carries Raft messages between the replication
// hosts of different nodes over gRPC: it implements replication.Transport.
//
// Each node sends to each other node on one client-streaming RPC
// (sluice.internal.v1.RaftTransport/Send) registered on the receiver's
// internal gRPC server (RegisterService). A frame carries every message
// queued for the destination while the previous frame was written —
// messages of all groups, and the host's node-level liveness messages
// (which, with quiescence of idle groups, replace per-group heartbeats).
// Frames are protobuf wire format (frame.go documents the message shapes)
// through a pass-through codec selected by content-subtype, so the
// transport needs no generated code and a generated type of the same
// shape reads the same bytes. A message larger than 2 MiB (a snapshot of
// a partition with many idempotent producers, a record batch over 2 MiB)
// travels as a run of chunks of 2 MiB, one per frame, that the receiver
// reassembles and delivers whole; so frames stay near 2 MiB and no
// message-size limit of the receiving server bounds a snapshot.
//
// Delivery is best effort, in order per destination: a full queue or a
// broken stream drops messages, which raft retries.
//
// # Locking
//
// Transport.mu guards the handler, the peer map and closed. peer.mu guards
// the peer's queue. Neither is held while sending or calling the handler.
//
// # Goroutines
//
// One sender goroutine per destination node, started on first Send and
// owned by the Transport; Close cancels them (ending their streams) and
// waits. Receiving runs on the gRPC server's stream goroutines.
package grpctransport
