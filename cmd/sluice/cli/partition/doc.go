// Package partition implements `sluice partition reassign`: moving a
// partition's replicas to other nodes (ClusterService.ReassignPartition).
//
// LOCKING: none; the command runs on one goroutine.
package partition
