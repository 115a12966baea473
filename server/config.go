package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/replication"
)

// Config configures one node. DefaultConfig gives a one-node cluster with
// data in ./data; Validate fills in defaults for zero values.
type Config struct {
	// NodeID is this node's id in the cluster (default 1).
	NodeID uint64
	// DataDir holds the node's partitions and cluster metadata (default "./data").
	DataDir string
	// ListenAddr is the client gRPC API address (default "127.0.0.1:9700").
	// Port 0 picks a free port; Server.Addr reports it.
	ListenAddr string
	// InternalListenAddr is the node-to-node address (default
	// "127.0.0.1:9701"): nodes that are not the controller send it their
	// metadata changes.
	InternalListenAddr string
	// HTTPListenAddr serves /metrics, /healthz and /readyz (default
	// "127.0.0.1:9702"); empty string after Validate is not allowed, use
	// port 0 for an ephemeral port.
	HTTPListenAddr string
	// AdvertiseAddr is the client address other nodes and clients are told
	// (default: the address the client listener is bound to).
	AdvertiseAddr string
	// Join lists internal listen addresses of existing nodes: a node
	// outside the controller quorum joins the running cluster through any
	// of them (at every start; see join.go).
	Join []string
	// Rack of this node, for rack-aware placement.
	Rack string
	// DefaultPartitions is used when CreateTopic asks for 0 (default 1).
	DefaultPartitions int32
	// DefaultReplicationFactor is used when CreateTopic asks for 0 (default
	// 3, capped at the number of nodes).
	DefaultReplicationFactor int32
	// OffsetsTopicPartitions is the partition count of __consumer_offsets
	// (consumer groups and their offsets) when this node creates it; 0
	// means one per live node. It is fixed once the topic exists.
	OffsetsTopicPartitions int32
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registry receives every metric of the node and is served on
	// /metrics; nil creates a private one.
	Registry *prometheus.Registry
	// TickInterval is the Raft clock period (default 100ms).
	TickInterval time.Duration
	// RetentionCheck is how often retention runs per partition (default 30s).
	RetentionCheck time.Duration
	// SegmentBytes is the default segment size of partition logs
	// (default 128 MiB; a topic's segment.bytes overrides it).
	SegmentBytes int64
	// ProduceTimeout bounds a produce when the request sets no timeout
	// (default 30s).
	ProduceTimeout time.Duration
	// ControllerQuorum lists the controller voters of a cluster of several
	// processes as "id@host:port" (their internal listen addresses), the
	// same on every node, this node among them: the nodes then talk Raft
	// over gRPC on their internal listeners. Empty: a node alone (or
	// ControllerVoters with an injected Transport).
	ControllerQuorum []string
	// ControllerVoters are the node ids voting in the cluster metadata
	// group when it is created (default: the ControllerQuorum ids, else
	// this node alone). Every node of a cluster lists the same voters.
	ControllerVoters []uint64
	// Transport carries Raft messages to other nodes; nil for a node
	// alone. (In-process clusters use replication.MemNetwork.)
	Transport replication.Transport
	// MaxRecvMsgBytes is the largest request the client API accepts
	// (default 64 MiB).
	MaxRecvMsgBytes int
	// LeaderBalanceInterval is how often a node hands the partitions it
	// leads to their preferred leaders (default 1m; negative: never).
	LeaderBalanceInterval time.Duration
	// Pprof serves Go's runtime profiles at /debug/pprof/ on the HTTP
	// listener (default off).
	Pprof bool
}

// DefaultConfig is a one-node cluster on loopback with data in ./data.
func DefaultConfig() Config {
	return Config{
		NodeID:                   1,
		DataDir:                  "./data",
		ListenAddr:               "127.0.0.1:9700",
		InternalListenAddr:       "127.0.0.1:9701",
		HTTPListenAddr:           "127.0.0.1:9702",
		DefaultPartitions:        1,
		DefaultReplicationFactor: 3,
		TickInterval:             100 * time.Millisecond,
		RetentionCheck:           30 * time.Second,
		SegmentBytes:             128 << 20,
		ProduceTimeout:           30 * time.Second,
		MaxRecvMsgBytes:          64 << 20,
	}
}

// Validate checks the configuration and sets defaults for zero values.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.NodeID == 0 {
		c.NodeID = d.NodeID
	}
	if c.NodeID > 1<<31-1 {
		return fmt.Errorf("server: node id %d out of range (1..2147483647)", c.NodeID)
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.ListenAddr == "" {
		c.ListenAddr = d.ListenAddr
	}
	if c.InternalListenAddr == "" {
		c.InternalListenAddr = d.InternalListenAddr
	}
	if c.HTTPListenAddr == "" {
		c.HTTPListenAddr = d.HTTPListenAddr
	}
	for name, a := range map[string]string{"listen address": c.ListenAddr, "internal listen address": c.InternalListenAddr, "HTTP listen address": c.HTTPListenAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("server: %s %q: %w", name, a, err)
		}
	}
	for _, a := range c.Join {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
			return fmt.Errorf("server: join address %q: %w", a, err)
		}
	}
	if c.DefaultPartitions < 0 || c.DefaultReplicationFactor < 0 {
		return errors.New("server: default partitions and replication factor must not be negative")
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = d.DefaultPartitions
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = d.DefaultReplicationFactor
	}
	if c.TickInterval <= 0 {
		c.TickInterval = d.TickInterval
	}
	if c.RetentionCheck <= 0 {
		c.RetentionCheck = d.RetentionCheck
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.ProduceTimeout <= 0 {
		c.ProduceTimeout = d.ProduceTimeout
	}
	if c.MaxRecvMsgBytes <= 0 {
		c.MaxRecvMsgBytes = d.MaxRecvMsgBytes
	}
	quorum, err := parseQuorum(c.ControllerQuorum)
	if err != nil {
		return err
	}
	if len(quorum) > 0 {
		in := slices.ContainsFunc(quorum, func(m quorumMember) bool { return m.id == c.NodeID })
		if !in && len(c.Join) == 0 {
			return fmt.Errorf("server: node %d is not in the controller quorum: start it with --join to join the cluster", c.NodeID)
		}
		if in && len(c.Join) > 0 {
			return fmt.Errorf("server: node %d is a controller voter: it does not --join", c.NodeID)
		}
		if len(c.ControllerVoters) == 0 {
			for _, m := range quorum {
				c.ControllerVoters = append(c.ControllerVoters, m.id)
			}
		}
	}
	for _, v := range c.ControllerVoters {
		if v == 0 || v > 1<<31-1 {
			return fmt.Errorf("server: controller voter id %d out of range", v)
		}
	}
	if len(c.ControllerVoters) > 1 && c.Transport == nil && len(quorum) == 0 {
		return errors.New("server: several controller voters need a transport or a controller quorum")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
