// Package hist is a log-linear latency histogram in the manner of HdrHistogram: values
// are counted in buckets whose width is at most 1/64 of their magnitude, so any
// percentile is reported within 1.6% of the true value, with fixed memory (about 30 KiB)
// whatever the number or range of values.
//
// LOCKING: a Histogram is not safe for concurrent use; a Recorder wraps a total and an
// interval Histogram with one mutex (Recorder.mu).
package hist
