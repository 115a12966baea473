// Package storage owns a partition's segmented log on disk: the Raft log
// and the record log at once (one write per record). It implements
// raft.Storage directly over the segment files, translates Raft indexes to
// dense record offsets, commits many logs' writes in shared fsyncs, recovers
// after crashes and applies retention.
//
// The on-disk format, recovery rules and LOCKING are described below as
// they land.
package storage
