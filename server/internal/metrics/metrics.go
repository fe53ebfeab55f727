// Package metrics holds the server's Prometheus metrics: one registry with
// QFLARE's collectors, the Go runtime and process collectors, and the
// /metrics handler.
//
// The package knows nothing of the round engine. Its inputs are plain
// calls (RoundEnded, Update, ObserveDecode, ...) and a function that lists
// the live runs at scrape time; the server's main package adapts the
// engine's events and views to them, and the store reports its writes
// through ObserveWrite. README.md ("Metrics") documents every metric.
//
// A Metrics is safe for concurrent use; a nil *Metrics ignores every call,
// so code can take one optionally.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every QFLARE metric.
const Namespace = "qflare"

// Run is a live run's state, read when /metrics is scraped.
type Run struct {
	ID           string
	Status       string // waiting, running, finished, stopped, failed
	Connected    int    // clients with an open connection
	Clients      int    // clients that ever joined
	Round        int    // last round opened
	ModelVersion int64  // rounds aggregated
	TestAccuracy float64
}

// Options configures New.
type Options struct {
	// Runs lists the runs the engine holds; nil reports none. It is called
	// at every scrape and must be quick and safe for concurrent use.
	Runs func() []Run
	// Go adds the Go runtime, build and process collectors (on for a
	// server; tests that build several registries may leave it off).
	Go bool
}

// Metrics is the server's registry and collectors.
type Metrics struct {
	reg *prometheus.Registry

	rounds       *prometheus.CounterVec
	roundSeconds prometheus.Histogram
	updates      *prometheus.CounterVec
	excluded     prometheus.Counter
	runsEnded    *prometheus.CounterVec

	wireBytes *prometheus.CounterVec
	wireMsgs  *prometheus.CounterVec
	conns     prometheus.Gauge
	connsAll  prometheus.Counter

	decode    prometheus.Histogram
	aggregate prometheus.Histogram
	evaluate  prometheus.Histogram

	writeSeconds *prometheus.HistogramVec
	writeErrors  *prometheus.CounterVec

	httpRequests *prometheus.CounterVec
	httpSeconds  *prometheus.HistogramVec

	shard shardMetrics // edge shards' links (shard.go)
}

// New returns a registry with every collector registered.
func New(opt Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets})
	}
	// Buckets: CPU steps from half a millisecond, evaluation from 10 ms,
	// rounds from a quarter second (a browser round with a 6,000-sample
	// slice takes seconds; with a deadline, minutes).
	fast := prometheus.ExponentialBuckets(0.0005, 2, 14) // 0.5 ms .. 4 s
	eval := prometheus.ExponentialBuckets(0.01, 2, 12)   // 10 ms .. 20 s
	round := prometheus.ExponentialBuckets(0.25, 2, 13)  // 0.25 s .. 17 min

	m.rounds = counter("rounds_total", "Rounds closed, by result: aggregated (produced a model) or failed.", "result")
	m.roundSeconds = histogram("round_duration_seconds", "Time from a round's start to its close, aggregated or failed.", round)
	m.updates = counter("updates_total", "Updates received, by verdict (accepted, rejected, declined) and, for refused ones, the reject code.", "verdict", "code")
	m.excluded = counter("updates_excluded_total", "Accepted updates the aggregator left out (anomaly detection, robust rules).").WithLabelValues()
	m.runsEnded = counter("runs_ended_total", "Runs that ended, by status: finished, stopped or failed.", "status")
	m.wireBytes = counter("participant_bytes_total", "WebSocket payload bytes on participant connections: up (from clients: hellos, progress, updates) and down (to clients: control messages, models).", "direction")
	m.wireMsgs = counter("participant_messages_total", "WebSocket messages on participant connections, by direction (up, down) and kind (control, binary).", "direction", "kind")
	m.conns = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "participant_connections", Help: "Open participant WebSocket connections."})
	m.connsAll = counter("participant_connections_total", "Participant WebSocket connections opened.").WithLabelValues()
	m.decode = histogram("decode_duration_seconds", "Time to decode and check one update frame against the round's model.", fast)
	m.aggregate = histogram("aggregate_duration_seconds", "Time to finish a round's aggregation (folding is streamed as updates arrive; this is the final step).", fast)
	m.evaluate = histogram("evaluate_duration_seconds", "Time to evaluate a new global model on the run's test set.", eval)
	m.writeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "sqlite_write_duration_seconds",
		Help: "SQLite write transactions (each fsynced), by operation, waiting for the writer connection included.", Buckets: fast}, []string{"op"})
	m.writeErrors = counter("sqlite_write_errors_total", "SQLite write transactions that failed, by operation.", "op")
	m.httpRequests = counter("http_requests_total", "HTTP requests, by route pattern and status code, counted when they end (a WebSocket when it closes).", "route", "code")
	m.httpSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "http_request_duration_seconds",
		Help: "HTTP request latency by route pattern (long-lived WebSocket and event-stream requests are not timed).", Buckets: prometheus.DefBuckets}, []string{"route"})

	m.reg.MustRegister(m.rounds, m.roundSeconds, m.updates, m.excluded, m.runsEnded, m.wireBytes, m.wireMsgs,
		m.conns, m.connsAll, m.decode, m.aggregate, m.evaluate, m.writeSeconds, m.writeErrors, m.httpRequests, m.httpSeconds,
		&runCollector{runs: opt.Runs})
	m.registerShard()
	if opt.Go {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			collectors.NewBuildInfoCollector())
	}
	// Series that exist from the start, so that rate() and dashboards see
	// zeros instead of nothing.
	for _, r := range []string{"aggregated", "failed"} {
		m.rounds.WithLabelValues(r)
	}
	m.updates.WithLabelValues("accepted", "")
	for _, d := range []string{"up", "down"} {
		m.wireBytes.WithLabelValues(d)
	}
	return m
}

// Registry returns the registry, to register more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus' text (or negotiated) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// RoundEnded records a closed round: how long it was open and whether it
// produced a model.
func (m *Metrics) RoundEnded(d time.Duration, failed bool) {
	if m == nil {
		return
	}
	result := "aggregated"
	if failed {
		result = "failed"
	}
	m.rounds.WithLabelValues(result).Inc()
	m.roundSeconds.Observe(d.Seconds())
}

// Update records one received update: verdict is "accepted", "rejected" or
// "declined", and code the reject code of a refused one ("" otherwise).
func (m *Metrics) Update(verdict, code string) {
	if m == nil {
		return
	}
	m.updates.WithLabelValues(label(verdict), label(code)).Inc()
}

// Excluded records n accepted updates that the aggregator left out.
func (m *Metrics) Excluded(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.excluded.Add(float64(n))
}

// RunEnded records a run that ended with status.
func (m *Metrics) RunEnded(status string) {
	if m == nil {
		return
	}
	m.runsEnded.WithLabelValues(label(status)).Inc()
}

// ObserveDecode records the time to decode and check one update frame.
// The engine calls it (see README.md, "Metrics").
func (m *Metrics) ObserveDecode(d time.Duration) {
	if m != nil {
		m.decode.Observe(d.Seconds())
	}
}

// ObserveAggregate records the time to finish one round's aggregation.
func (m *Metrics) ObserveAggregate(d time.Duration) {
	if m != nil {
		m.aggregate.Observe(d.Seconds())
	}
}

// ObserveEvaluate records the time to evaluate one global model.
func (m *Metrics) ObserveEvaluate(d time.Duration) {
	if m != nil {
		m.evaluate.Observe(d.Seconds())
	}
}

// ObserveWrite records one SQLite write; its signature is
// store.WithWriteObserver's.
func (m *Metrics) ObserveWrite(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	op = label(op)
	m.writeSeconds.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.writeErrors.WithLabelValues(op).Inc()
	}
}

// label bounds a label value taken from the engine's vocabulary: short
// lower-case words and underscores, anything else "other".
func label(s string) string {
	if len(s) > 32 {
		return "other"
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' && (c < '0' || c > '9') {
			return "other"
		}
	}
	return s
}
