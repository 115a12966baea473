// Package app holds what every sluice CLI command shares: the global flags (brokers,
// output format, request timeout), the connection to the cluster, output helpers for
// text and JSON, and the rendering of errors with their machine-readable reason.
//
// Commands receive a *Globals and return errors; only package main turns an error into
// an exit status. Nothing here calls os.Exit.
//
// LOCKING: Globals is filled in by flag parsing before a command runs and is read-only
// afterwards; its lazily dialled connection is created by the command's own goroutine,
// so it has no mutex. Commands that print from several goroutines wrap their writers
// themselves (see package bench).
package app
