package metrics

import "github.com/prometheus/client_golang/prometheus"

// shardMetrics are the edge shards' links (serve --shard-token).
type shardMetrics struct {
	bytes *prometheus.CounterVec
	links prometheus.Gauge
}

// registerShard creates and registers the edge shards' collectors.
func (m *Metrics) registerShard() {
	m.shard.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "shard_bytes_total",
		Help: "WebSocket payload bytes on edge shards' links: up (from shards: relayed control messages, update metadata, partials) and down (to shards: relayed messages, model frames)."},
		[]string{"direction"})
	m.shard.links = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "shard_links", Help: "Edge shards linked now."})
	m.reg.MustRegister(m.shard.bytes, m.shard.links)
	for _, d := range []string{"up", "down"} {
		m.shard.bytes.WithLabelValues(d)
	}
}

// ShardLinked records an edge shard's link and returns the function that
// records its end (call it once).
func (m *Metrics) ShardLinked() (unlinked func()) {
	if m == nil {
		return func() {}
	}
	m.shard.links.Inc()
	return m.shard.links.Dec
}

// ShardMessage records one message of n payload bytes on a shard's link:
// up (from the shard) or down.
func (m *Metrics) ShardMessage(up bool, n int) {
	if m == nil {
		return
	}
	dir := "down"
	if up {
		dir = "up"
	}
	m.shard.bytes.WithLabelValues(dir).Add(float64(n))
}
