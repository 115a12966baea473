package coordinator

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics exports group lag and membership, computed when scraped from
// the groups this node coordinates (so a group is reported by exactly one
// node) and the high watermarks of the local replicas.
type metrics struct {
	c       *Coordinator
	reg     prometheus.Registerer
	lag     *prometheus.Desc
	members *prometheus.Desc
	commits *prometheus.CounterVec
}

func newMetrics(c *Coordinator, reg prometheus.Registerer) *metrics {
	m := &metrics{c: c, reg: reg,
		lag: prometheus.NewDesc("sluice_group_lag_records",
			"Records between a group's committed offset and the partition's high watermark.",
			[]string{"group", "topic", "partition"}, nil),
		members: prometheus.NewDesc("sluice_group_members", "Members of a consumer group.", []string{"group"}, nil),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_group_offset_commits_total",
			Help: "Offsets committed, per group."}, []string{"group"}),
	}
	if reg != nil {
		_ = reg.Register(m)
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg != nil {
		m.reg.Unregister(m)
	}
}

func (m *metrics) committed(group string, offsets []OffsetCommit) {
	m.commits.WithLabelValues(group).Add(float64(len(offsets)))
}

func (m *metrics) forget(group string) {
	m.commits.DeleteLabelValues(group)
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.lag
	ch <- m.members
	m.commits.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.commits.Collect(ch)
	for _, gi := range m.c.List() {
		ch <- prometheus.MustNewConstMetric(m.members, prometheus.GaugeValue, float64(len(gi.Members)), gi.ID)
		for tp, co := range gi.Offsets {
			// Any local replica knows the high watermark (a follower's
			// may trail the leader's slightly).
			p, _, err := m.c.md.Partition(tp.Topic, tp.Partition)
			if err != nil {
				continue
			}
			lag := max(int64(p.HighWatermark())-co.Offset, 0)
			ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(lag), gi.ID, tp.Topic, itoa(tp.Partition))
		}
	}
}
