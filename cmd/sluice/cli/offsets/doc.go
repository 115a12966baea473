// Package offsets implements `sluice offsets TOPIC`: the earliest and latest offset of
// each partition, and optionally the offset at a point in time (AdminService.ListOffsets).
//
// LOCKING: none; the command runs on one goroutine.
package offsets
