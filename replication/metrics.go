package replication

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	partitions      prometheus.Gauge
	leaders         prometheus.Gauge
	leaderChanges   prometheus.Counter
	applied         prometheus.Counter
	proposalLatency prometheus.Histogram
	syncLatency     prometheus.Histogram
	followerAppend  prometheus.Histogram
	snapshots       *prometheus.CounterVec

	reg        prometheus.Registerer
	registered []prometheus.Collector // unregistered on Close
}

// register registers cs, remembering them for unregister. A collector
// already registered (another host on the same registry) is logged by the
// caller's logger and skipped, never a panic.
func (m *metrics) register(cs ...prometheus.Collector) error {
	if m.reg == nil {
		return nil
	}
	var first error
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		m.registered = append(m.registered, c)
	}
	return first
}

func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "partitions",
			Help: "Partition replicas hosted by this node.",
		}),
		leaders: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "leader_partitions",
			Help: "Partition replicas this node currently leads.",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "leadership_changes_total",
			Help: "Leader changes observed by this node's replicas.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "applied_entries_total",
			Help: "Raft entries applied by this node's replicas.",
		}),
		proposalLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "proposal_duration_seconds",
			Help:    "Time from proposal to apply on the leader.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		syncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "log_sync_duration_seconds",
			Help:    "Time a partition waits for its log to become durable.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		followerAppend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "follower_append_duration_seconds",
			Help:    "Time from a follower receiving the leader's entries to sending its acknowledgement (append and sync): its share of commit latency.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "snapshots_total",
			Help: "Partition snapshots taken (op=create) and received from a leader (op=install).",
		}, []string{"op"}),
	}
	return m
}

// registerStateGauges exports gauges computed from the replicas at scrape
// time: partitions without a known leader, and partitions this node leads
// whose replicas lag or are unreachable.
func (h *Host) registerMetrics() {
	m := h.metrics
	err := m.register(m.partitions, m.leaders, m.leaderChanges, m.applied, m.proposalLatency, m.syncLatency, m.followerAppend, m.snapshots,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "leaderless_partitions",
			Help: "Partition replicas on this node that know no leader.",
		}, func() float64 {
			n := 0
			for _, p := range h.Partitions() {
				if p.Leader() == 0 {
					n++
				}
			}
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "replication", Name: "under_replicated_partitions",
			Help: "Partitions led by this node with a replica that lags the commit index or is unreachable.",
		}, func() float64 {
			n := 0
			for _, p := range h.Partitions() {
				if !p.IsLeader() {
					continue
				}
				if st := p.Status(); st.UnderReplicated() {
					n++
				}
			}
			return float64(n)
		}),
	)
	if err != nil {
		h.logger.Warn("replication metrics not registered", "err", err)
	}
}
