package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// brokerMetrics are the node's traffic metrics. Partition counts and log
// sizes are collected on scrape (see partitionCollector).
type brokerMetrics struct {
	bytesIn    *prometheus.CounterVec // topic
	recordsIn  *prometheus.CounterVec // topic
	bytesOut   *prometheus.CounterVec // topic
	recordsOut *prometheus.CounterVec // topic
	produceLat *prometheus.HistogramVec
	fetchLat   *prometheus.HistogramVec
}

var latencyBuckets = []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newBrokerMetrics(reg prometheus.Registerer) *brokerMetrics {
	m := &brokerMetrics{
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Name: "topic_bytes_in_total",
			Help: "Batch bytes appended, per topic."}, []string{"topic"}),
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Name: "topic_records_in_total",
			Help: "Records appended, per topic."}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Name: "topic_bytes_out_total",
			Help: "Batch bytes served to consumers, per topic."}, []string{"topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Name: "topic_records_out_total",
			Help: "Records served to consumers, per topic."}, []string{"topic"}),
		produceLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sluice", Name: "produce_latency_seconds",
			Help: "Time to append a batch, by acks level.", Buckets: latencyBuckets}, []string{"acks"}),
		fetchLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sluice", Name: "fetch_latency_seconds",
			Help: "Time to answer a Fetch, long-poll wait included.", Buckets: latencyBuckets}, []string{}),
	}
	if reg != nil {
		reg.MustRegister(m.bytesIn, m.recordsIn, m.bytesOut, m.recordsOut, m.produceLat, m.fetchLat)
	}
	return m
}

func (m *brokerMetrics) forgetTopic(topic string) {
	for _, v := range []*prometheus.CounterVec{m.bytesIn, m.recordsIn, m.bytesOut, m.recordsOut} {
		v.DeleteLabelValues(topic)
	}
}

// partitionCollector reports partition counts and log sizes on scrape.
type partitionCollector struct {
	c *core
	s *Server
}

var (
	partitionsDesc = prometheus.NewDesc("sluice_partitions", "Partition replicas hosted by this node.", nil, nil)
	leadersDesc    = prometheus.NewDesc("sluice_partition_leaders", "Partitions this node leads.", nil, nil)
	logSizeDesc    = prometheus.NewDesc("sluice_log_size_bytes", "Bytes of a partition's log on this node.", []string{"topic", "partition"}, nil)
	underDesc      = prometheus.NewDesc("sluice_partitions_under_replicated",
		"Partitions this node leads with a follower lagging or unreachable (sum over the nodes for the cluster).", nil, nil)
	leaderlessDesc = prometheus.NewDesc("sluice_cluster_partitions_leaderless",
		"Partitions no node leads, cluster-wide; reported by the controller (0 on other nodes).", nil, nil)
)

func (pc *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- partitionsDesc
	ch <- leadersDesc
	ch <- logSizeDesc
	ch <- underDesc
	ch <- leaderlessDesc
}

func (pc *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	s := pc.c.md.State()
	parts, leaders, under := 0, 0, 0
	for _, name := range s.TopicNames() {
		t := s.Topics[name]
		for _, pi := range t.Partitions {
			p, ok := pc.c.host.Partition(pi.GroupID)
			if !ok {
				continue
			}
			parts++
			if p.IsLeader() {
				leaders++
				if st := p.Status(); st.IsLeader && (st.UnderReplicated() || len(st.Replicas) < len(pi.Replicas)) {
					under++
				}
			}
			ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(p.LogSize()), name, itoa(pi.Index))
		}
	}
	ch <- prometheus.MustNewConstMetric(partitionsDesc, prometheus.GaugeValue, float64(parts))
	ch <- prometheus.MustNewConstMetric(leadersDesc, prometheus.GaugeValue, float64(leaders))
	ch <- prometheus.MustNewConstMetric(underDesc, prometheus.GaugeValue, float64(under))
	leaderless := int32(0)
	if pc.c.md.IsController() {
		_, leaderless = pc.s.partitionHealth(context.Background(), s)
	}
	ch <- prometheus.MustNewConstMetric(leaderlessDesc, prometheus.GaugeValue, float64(leaderless))
}
