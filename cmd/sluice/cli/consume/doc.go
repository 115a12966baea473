// Package consume implements `sluice consume TOPIC`: it resolves the start position of
// each partition (--from) with ListOffsets, reads through a clients.Consumer and prints
// each record as text, JSON or a template.
//
// LOCKING: none; the command's goroutine polls and prints. The consumer's goroutines end
// in its Close, which the command defers.
package consume
