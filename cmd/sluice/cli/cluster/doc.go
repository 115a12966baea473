// Package cluster implements `sluice cluster status`: the cluster id, controller,
// nodes and partition health (ClusterService).
//
// LOCKING: none; the command runs on one goroutine.
package cluster
