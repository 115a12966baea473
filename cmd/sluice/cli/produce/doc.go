// Package produce implements `sluice produce TOPIC`: one record per line of standard
// input, handed to a clients.Producer (batching per partition, murmur2 key placement,
// compression, leader routing, retries), with a summary of where the records landed.
//
// LOCKING: one goroutine reads stdin into a channel, the command's goroutine produces;
// the producer's promises run on its goroutines and write the summary under sender.mu.
// Every goroutine ends before the command returns (the reader on EOF or cancellation,
// the producer's in Close).
package produce
