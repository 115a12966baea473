package storage

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// SyncGroupOption configures a SyncGroup.
type SyncGroupOption func(*syncGroupConfig)

type syncGroupConfig struct {
	logger      *slog.Logger
	registerer  prometheus.Registerer
	parallelism int
}

// WithSyncLogger sets the logger (nil = discard).
func WithSyncLogger(l *slog.Logger) SyncGroupOption {
	return func(c *syncGroupConfig) { c.logger = l }
}

// WithSyncRegisterer registers the group's metrics (nil = none).
func WithSyncRegisterer(r prometheus.Registerer) SyncGroupOption {
	return func(c *syncGroupConfig) { c.registerer = r }
}

// WithSyncParallelism bounds the fsyncs a flush cycle runs at once
// (default 16).
func WithSyncParallelism(n int) SyncGroupOption {
	return func(c *syncGroupConfig) { c.parallelism = n }
}

// SyncGroup is the group commit of one node: Sync calls of all logs that
// share it are served by flush cycles; a cycle fsyncs each dirty file once.
type SyncGroup struct{}

// NewSyncGroup starts a SyncGroup. Close stops it.
func NewSyncGroup(opts ...SyncGroupOption) *SyncGroup { return &SyncGroup{} }

// Close stops the flusher after serving pending syncs and waits for it.
func (g *SyncGroup) Close() error { return nil }
