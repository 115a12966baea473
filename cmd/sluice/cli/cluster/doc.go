// Package cluster implements `sluice cluster status` (the cluster id, controller,
// nodes and partition health) and `sluice cluster balance-leaders`
// (ClusterService).
//
// LOCKING: none; the command runs on one goroutine.
package cluster
