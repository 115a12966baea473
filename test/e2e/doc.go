// Package e2e runs the sluice binary as separate processes on loopback: it builds
// ./cmd/sluice into a temporary directory, starts `sluice server` on free ports (port 0,
// read back from the server's JSON log) and drives it through the CLI and the gRPC API.
//
// The tests are skipped, with a message saying why, only when the server package does
// not build yet. Waits use generous deadlines as failure guards only; nothing asserts
// how fast anything is.
//
// LOCKING: a node's log buffer is written by its stderr reader goroutine and read by the
// test; logBuf has its own mutex.
package e2e
