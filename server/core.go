package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/coordinator"
	"github.com/sluicehq/sluice/replication"
	"github.com/sluicehq/sluice/storage"
)

// core is what the services call into: the node's replication host and
// its view of the cluster metadata.
type core struct {
	host  *replication.Host
	md    *cluster.Metadata
	coord *coordinator.Coordinator
}

// openCore opens the node's data: the replication host, then the cluster
// metadata (replayed, this node registered, replicas reconciled).
func openCore(cfg Config, advertise, internal string, forward cluster.Forwarder, reg prometheus.Registerer, logger *slog.Logger) (*core, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	host, err := replication.NewHost(replication.HostConfig{
		NodeID:         cfg.NodeID,
		DataDir:        cfg.DataDir,
		TickInterval:   cfg.TickInterval,
		RetentionCheck: cfg.RetentionCheck,
		Transport:      cfg.Transport,
		Logger:         logger.With("component", "replication"),
		Registerer:     reg,
		Storage:        storage.Options{SegmentBytes: cfg.SegmentBytes, Logger: logger.With("component", "storage")},
	})
	if err != nil {
		return nil, fmt.Errorf("server: replication: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	md, err := cluster.Open(ctx, cluster.Config{
		NodeID:                   cfg.NodeID,
		Host:                     host,
		DataDir:                  cfg.DataDir,
		Addr:                     advertise,
		InternalAddr:             internal,
		Rack:                     cfg.Rack,
		Voters:                   cfg.ControllerVoters,
		Join:                     len(cfg.Join) > 0,
		LeaderBalanceInterval:    cfg.LeaderBalanceInterval,
		Forward:                  forward,
		DefaultPartitions:        cfg.DefaultPartitions,
		DefaultReplicationFactor: cfg.DefaultReplicationFactor,
		Logger:                   logger,
		Registerer:               reg,
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("server: cluster metadata: %w", err), host.Close())
	}
	coord, err := coordinator.New(coordinator.Config{NodeID: cfg.NodeID, Metadata: md,
		OffsetsPartitions: cfg.OffsetsTopicPartitions, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, errors.Join(err, md.Close(), host.Close())
	}
	return &core{host: host, md: md, coord: coord}, nil
}

// start begins the core's background work that needs the server (none
// yet beyond what host and metadata run themselves).
func (c *core) start(s *Server) {
	s.reg.MustRegister(&partitionCollector{c: c, s: s})
}

func (c *core) close() error {
	return errors.Join(c.coord.Close(), c.md.Close(), c.host.Close())
}
