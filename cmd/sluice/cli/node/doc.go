// Package node implements `sluice node decommission`: moving every replica
// off a node before it leaves the cluster (ClusterService.DecommissionNode).
//
// LOCKING: none; the command runs on one goroutine.
package node
