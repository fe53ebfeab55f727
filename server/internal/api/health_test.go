package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/metrics"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/wire"
	"github.com/qflare/qflare/wasmclient/headless"
)

// TestHealth drives the probes and the drain through a table of server
// states: starting, ready, database gone, draining.
func TestHealth(t *testing.T) {
	type req struct {
		method, path, token string
		status              int
		body                string // a substring of the answer
	}
	tests := []struct {
		name  string
		setup func(s *api.Server, st *store.Store)
		reqs  []req
	}{
		{"starting", func(*api.Server, *store.Store) {}, []req{
			{"GET", "/healthz", "", 200, `"ok"`},
			{"GET", "/readyz", "", 503, "starting"},
			{"GET", "/ws", "", 503, "starting"},
			{"POST", "/api/runs", adminToken, 503, "starting"},
			{"GET", "/api/info", "", 200, "qflare"},
		}},
		{"ready", func(s *api.Server, _ *store.Store) { s.MarkReady() }, []req{
			{"GET", "/healthz", "", 200, `"ok"`},
			{"GET", "/readyz", "", 200, `"ready"`},
			{"POST", "/api/runs", adminToken, 400, "empty body"}, // reaches the handler
			{"GET", "/ws", "", 400, ""},                          // reaches the upgrader: not a WebSocket request
			{"GET", "/metrics", "", 200, "qflare_rounds_total"},
			{"GET", "/debug/pprof/", "", 401, "admin token"},
			{"GET", "/debug/pprof/", adminToken, 200, "goroutine"},
			{"GET", "/debug/pprof/cmdline", "", 401, "admin token"},
		}},
		{"database closed", func(s *api.Server, st *store.Store) { s.MarkReady(); st.Close() }, []req{
			{"GET", "/healthz", "", 200, `"ok"`},
			{"GET", "/readyz", "", 503, "database"},
		}},
		{"draining", func(s *api.Server, _ *store.Store) { s.MarkReady(); s.Drain() }, []req{
			{"GET", "/healthz", "", 200, `"ok"`},
			{"GET", "/readyz", "", 503, "shutting down"},
			{"GET", "/ws", "", 503, "shutting down"},
			{"POST", "/api/runs", adminToken, 503, "shutting down"},
			{"POST", "/api/fl/run_real_training", "", 503, "shutting down"},
			{"GET", "/api/runs", "", 200, "["}, // reads go on
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "qflare.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			c := coord.New(coord.Deps{Store: st,
				Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
			defer c.Close()
			// run_real_training is main's route; any handler shows that
			// routes main adds are refused while the server drains.
			seed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
			s := api.New(api.Options{Coord: c, AdminToken: adminToken, Metrics: metrics.New(metrics.Options{}), Starting: true,
				Routes: map[string]http.Handler{"POST /api/fl/run_real_training": seed}})
			tt.setup(s, st)
			for _, rq := range tt.reqs {
				r := httptest.NewRequest(rq.method, "http://localhost:8080"+rq.path, nil)
				if rq.token != "" {
					r.Header.Set("Authorization", "Bearer "+rq.token)
				}
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				body, _ := io.ReadAll(w.Result().Body)
				if w.Code != rq.status || !strings.Contains(string(body), rq.body) {
					t.Errorf("%s %s = %d %.120q; want %d with %q", rq.method, rq.path, w.Code, body, rq.status, rq.body)
				}
				if rq.path == "/readyz" && w.Code == 503 && w.Header().Get("Retry-After") == "" {
					t.Errorf("GET /readyz = 503 without Retry-After")
				}
			}
		})
	}
}

// TestReadyzJSON: a server made without Options.Starting is ready at once.
func TestReadyzJSON(t *testing.T) {
	ts := newTestServer(t)
	var got struct{ Status, Reason string }
	resp, err := http.Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || got.Status != "ready" || got.Reason != "" {
		t.Errorf("GET /readyz of a server made without Starting = %d %+v; want 200, ready", resp.StatusCode, got)
	}
}

// TestDrainTellsParticipants: once the server drains, a participant whose
// connection the coordinator closes gets a bye saying the server restarts,
// then WebSocket close code 1012, so that it reconnects later.
func TestDrainTellsParticipants(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "qflare.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := coord.New(coord.Deps{Store: st,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	defer c.Close()
	m := metrics.New(metrics.Options{})
	s := api.New(api.Options{Coord: c, AdminToken: adminToken, Metrics: m})
	srv := httptest.NewServer(s)
	defer srv.Close()
	run, err := c.CreateRun(ctx, coord.Config{Model: "mnist-2nn", Clients: 10, MinClients: 2, EvalLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := headless.Dial(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := &rawClient{t: t, conn: conn}
	rc.send(&wire.Hello{V: wire.Version, ClientID: "", Run: run.ID(), Token: run.Token(),
		Device: wire.Device{Kind: wire.DeviceHeadless, UserAgent: "drain test"}})
	nextOf[*wire.Wait](rc) // joined; the run waits for a second client

	s.Drain()
	c.Close()
	bye := nextOf[*wire.Bye](rc)
	if !strings.Contains(bye.Reason, "restart") {
		t.Errorf("bye on drain = %q; want it to say the server restarts", bye.Reason)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = conn.Recv(rctx)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1012 {
		t.Errorf("after the bye, Recv = %v; want WebSocket close code 1012", err)
	}
	if got := values(t, m); got["qflare_participant_connections_total{}"] != 1 || got["qflare_participant_bytes_total{direction=up}"] == 0 {
		t.Errorf("participant metrics after one connection = %v", got)
	}
}

// values gathers a registry into "name{labels}" → value (counters, gauges).
func values(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, x := range mf.Metric {
			var ls []string
			for _, l := range x.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			if x.Counter != nil {
				out[key] = x.Counter.GetValue()
			} else if x.Gauge != nil {
				out[key] = x.Gauge.GetValue()
			}
		}
	}
	return out
}
