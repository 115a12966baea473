// Package group implements `sluice group list|describe|seek|delete`: consumer groups and
// their committed offsets, over the GroupService (generated stubs).
//
// LOCKING: none; each command runs on one goroutine.
package group
