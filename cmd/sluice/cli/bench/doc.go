// Package bench implements `sluice bench produce|consume|e2e`, a load generator in the manner
// of kafka-producer-perf-test: it drives clients.Producer or clients.Consumer and reports
// a progress line each second and a summary with records/s, MB/s and latency
// percentiles (package hist). e2e produces at a fixed rate while a consumer in the same
// process reads, and reports the latency from produce to consumption. produce
// --in-process runs against a one-node server started in the bench process
// (inprocess.go).
//
// LOCKING: workers report through atomic counters and a hist.Recorder (its own mutex);
// the progress goroutine only reads them. The first error is kept once (meter.errOnce)
// and read after the workers have stopped. The progress goroutine and every worker end
// before a command returns.
package bench
