package metrics

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// values gathers the registry into "name{label=value,...}" → value.
func values(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
				out[key+"_sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

func TestCounters(t *testing.T) {
	m := New(Options{})
	m.RoundEnded(3*time.Second, false)
	m.RoundEnded(time.Second, true)
	m.Update("accepted", "")
	m.Update("rejected", "late")
	m.Update("rejected", "Not A Code!")
	m.Excluded(2)
	m.RunEnded("finished")
	m.Message(true, true, 1000)
	m.Message(false, false, 20)
	closed := m.ConnOpened()
	m.ConnOpened()
	closed()
	m.ObserveWrite("commit_round", 5*time.Millisecond, nil)
	m.ObserveWrite("add_update", time.Millisecond, errors.New("disk full"))
	m.ObserveDecode(time.Millisecond)
	m.ObserveAggregate(2 * time.Millisecond)
	m.ObserveEvaluate(300 * time.Millisecond)
	got := values(t, m.Registry())
	for key, want := range map[string]float64{
		"qflare_rounds_total{result=aggregated}":                         1,
		"qflare_rounds_total{result=failed}":                             1,
		"qflare_round_duration_seconds{}_count":                          2,
		"qflare_round_duration_seconds{}_sum":                            4,
		"qflare_updates_total{code=,verdict=accepted}":                   1,
		"qflare_updates_total{code=late,verdict=rejected}":               1,
		"qflare_updates_total{code=other,verdict=rejected}":              1,
		"qflare_updates_excluded_total{}":                                2,
		"qflare_runs_ended_total{status=finished}":                       1,
		"qflare_participant_bytes_total{direction=up}":                   1000,
		"qflare_participant_bytes_total{direction=down}":                 20,
		"qflare_participant_messages_total{direction=up,kind=binary}":    1,
		"qflare_participant_messages_total{direction=down,kind=control}": 1,
		"qflare_participant_connections{}":                               1,
		"qflare_participant_connections_total{}":                         2,
		"qflare_sqlite_write_duration_seconds{op=commit_round}_count":    1,
		"qflare_sqlite_write_errors_total{op=add_update}":                1,
		"qflare_decode_duration_seconds{}_count":                         1,
		"qflare_aggregate_duration_seconds{}_count":                      1,
		"qflare_evaluate_duration_seconds{}_sum":                         0.3,
	} {
		if got[key] != want {
			t.Errorf("%s = %v; want %v", key, got[key], want)
		}
	}
}

func TestNilMetricsIgnoresCalls(t *testing.T) {
	var m *Metrics
	m.RoundEnded(time.Second, false)
	m.Update("accepted", "")
	m.Excluded(1)
	m.RunEnded("failed")
	m.Message(true, true, 1)
	m.ConnOpened()()
	m.ObserveWrite("x", 0, nil)
	m.ObserveDecode(0)
	m.ObserveAggregate(0)
	m.ObserveEvaluate(0)
	h := http.NotFoundHandler()
	if got := m.HTTP(h); got == nil {
		t.Errorf("nil Metrics.HTTP(h) = nil; want h")
	}
}

func TestRunGauges(t *testing.T) {
	runs := []Run{
		{ID: "run-a", Status: "running", Connected: 3, Clients: 4, Round: 7, ModelVersion: 6, TestAccuracy: 0.95},
		{ID: "run-b", Status: "waiting"},
		{ID: "run-c", Status: "finished", Connected: 0, Round: 20, ModelVersion: 20},
	}
	m := New(Options{Runs: func() []Run { return runs }})
	got := values(t, m.Registry())
	for key, want := range map[string]float64{
		"qflare_run_clients_connected{run=run-a}": 3,
		"qflare_run_clients{run=run-a}":           4,
		"qflare_run_round{run=run-a}":             7,
		"qflare_run_model_version{run=run-a}":     6,
		"qflare_run_test_accuracy{run=run-a}":     0.95,
		"qflare_run_clients_connected{run=run-b}": 0,
		"qflare_runs{status=running}":             1,
		"qflare_runs{status=waiting}":             1,
		"qflare_runs{status=finished}":            1,
		"qflare_runs{status=failed}":              0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", key, v, ok, want)
		}
	}
	if _, ok := got["qflare_run_round{run=run-c}"]; ok {
		t.Errorf("an ended run has per-run gauges; want them only for active runs")
	}
}

func TestGoCollectors(t *testing.T) {
	got := values(t, New(Options{Go: true}).Registry())
	for _, key := range []string{"go_goroutines{}", "process_cpu_seconds_total{}"} {
		if _, ok := got[key]; !ok {
			t.Errorf("%s missing from a registry with Go collectors", key)
		}
	}
}

// TestHTTP counts requests by the pattern the mux matched and keeps the
// Flusher and Hijacker of the writer it wraps.
func TestHTTP(t *testing.T) {
	m := New(Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /api/runs/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Errorf("the wrapped writer is not an http.Flusher")
			return
		}
		io.WriteString(w, "data: x\n\n")
		f.Flush()
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		h, ok := w.(http.Hijacker)
		if !ok {
			t.Errorf("the wrapped writer is not an http.Hijacker")
			return
		}
		c, rw, err := h.Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n")
		rw.Flush()
		c.Close()
	})
	srv := httptest.NewServer(m.HTTP(mux))
	defer srv.Close()
	for _, path := range []string{"/api/runs/a", "/api/runs/b", "/api/runs/missing", "/api/runs/a/events", "/nowhere"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Errorf("hijacked response = %q; want 101", line)
	}
	got := values(t, m.Registry())
	for key, want := range map[string]float64{
		"qflare_http_requests_total{code=200,route=GET /api/runs/{id}}":        2,
		"qflare_http_requests_total{code=404,route=GET /api/runs/{id}}":        1,
		"qflare_http_requests_total{code=200,route=GET /api/runs/{id}/events}": 1,
		"qflare_http_requests_total{code=404,route=unmatched}":                 1,
		"qflare_http_requests_total{code=101,route=GET /ws}":                   1,
		"qflare_http_request_duration_seconds{route=GET /api/runs/{id}}_count": 3,
	} {
		if got[key] != want {
			t.Errorf("%s = %v; want %v", key, got[key], want)
		}
	}
	if _, ok := got["qflare_http_request_duration_seconds{route=GET /ws}_count"]; ok {
		t.Errorf("the WebSocket route is timed; want long-lived routes untimed")
	}
}
