// Package topic implements `sluice topic create|list|describe|delete|alter` over the
// AdminService (generated stubs: admin calls need no batching or routing).
//
// LOCKING: none; each command runs on one goroutine.
package topic
