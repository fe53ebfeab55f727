package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// runCollector reports the live runs at scrape time: gauges per active run
// (waiting or running; ended runs drop out, so the run label stays
// bounded by the runs in progress) and the number of runs by status.
type runCollector struct {
	runs func() []Run
}

var (
	descConnected = prometheus.NewDesc(Namespace+"_run_clients_connected", "Clients connected to an active run.", []string{"run"}, nil)
	descClients   = prometheus.NewDesc(Namespace+"_run_clients", "Clients that ever joined an active run, connected or not.", []string{"run"}, nil)
	descRound     = prometheus.NewDesc(Namespace+"_run_round", "The last round an active run opened.", []string{"run"}, nil)
	descVersion   = prometheus.NewDesc(Namespace+"_run_model_version", "Rounds an active run has aggregated (its global model version).", []string{"run"}, nil)
	descAccuracy  = prometheus.NewDesc(Namespace+"_run_test_accuracy", "Test accuracy of an active run's latest global model.", []string{"run"}, nil)
	descRuns      = prometheus.NewDesc(Namespace+"_runs", "Runs this server process holds, by status.", []string{"status"}, nil)
)

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descClients, descRound, descVersion, descAccuracy, descRuns} {
		ch <- d
	}
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"waiting": 0, "running": 0, "finished": 0, "stopped": 0, "failed": 0}
	if c.runs != nil {
		for _, r := range c.runs() {
			counts[label(r.Status)]++
			if r.Status != "waiting" && r.Status != "running" {
				continue
			}
			gauge := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, r.ID)
			}
			gauge(descConnected, float64(r.Connected))
			gauge(descClients, float64(r.Clients))
			gauge(descRound, float64(r.Round))
			gauge(descVersion, float64(r.ModelVersion))
			gauge(descAccuracy, r.TestAccuracy)
		}
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, float64(n), status)
	}
}
