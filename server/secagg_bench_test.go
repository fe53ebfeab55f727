package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/wasmclient/headless"
)

// TestSecAggCostHeadless measures secure rounds with real headless clients
// over WebSockets against the server binary: for n = 10 and 100 clients
// (QFLARE_SECAGG_CLIENTS overrides), a plain run and a secure run on the
// complete graph and on k:8, each of 3 rounds of mnist-2nn with every
// client selected. It prints JSON lines: the clients' mean secure
// aggregation time and bytes per round (as they measure them), and the
// mean round seconds after the first, secure and plain. A measurement, not
// an assertion: run it with QFLARE_BENCH_SECAGG=1.
func TestSecAggCostHeadless(t *testing.T) {
	if os.Getenv("QFLARE_BENCH_SECAGG") != "1" {
		t.Skip("set QFLARE_BENCH_SECAGG=1 to measure secure rounds with headless clients")
	}
	sizes := []int{10, 100}
	if s := os.Getenv("QFLARE_SECAGG_CLIENTS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("QFLARE_SECAGG_CLIENTS=%q", s)
			}
			sizes = append(sizes, n)
		}
	}
	bin := serverBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	startServerLogs(t, bin, addr, filepath.Join(t.TempDir(), "q.db"))
	for _, n := range sizes {
		plain := headlessRun(t, base, n, "")
		for _, graph := range []string{"complete", "k:8"} {
			c := headlessRun(t, base, n, graph)
			b, _ := json.Marshal(map[string]any{"what": "secagg_headless", "n": n, "graph": graph,
				"client_wall_ms": round1(c.ms), "bytes_up": math.Round(c.up), "bytes_down": math.Round(c.down),
				"round_seconds": round3(c.seconds), "plain_round_seconds": round3(plain.seconds),
				"plain_bytes_up": math.Round(plain.up), "plain_bytes_down": math.Round(plain.down)})
			fmt.Println(string(b))
		}
	}
}

// headlessCost is what a run of headless clients measured.
type headlessCost struct {
	ms, up, down, seconds float64
}

// headlessRun runs n headless clients through a run of 3 rounds (secure
// on graph, or plain when graph is "") and returns the clients' mean cost
// per round and the mean round seconds after the first.
func headlessRun(t *testing.T, base string, n int, graph string) headlessCost {
	t.Helper()
	cfg := map[string]any{"model": "mnist-2nn", "rounds": 3, "clients": n, "fraction": 1, "start_clients": n,
		"min_clients": n, "eval_limit": 1000, "round_deadline": "10m"}
	if graph != "" {
		cfg["secure_agg"] = map[string]any{"graph": graph}
	}
	run := createRun(t, base, cfg)
	var mu sync.Mutex
	var cost headlessCost
	var rounds float64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	err := headless.Run(ctx, &headless.Options{Server: base, Run: run.ID, Token: run.token(), Clients: n, SlowMin: 1, SlowMax: 1,
		Seed: 5, Events: func(_ int, e participant.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch e.Type {
			case participant.EventSecure:
				cost.ms += e.SecureMS
				cost.up += float64(e.BytesUp)
				cost.down += float64(e.BytesDown)
				rounds++
			case participant.EventUpload:
				if graph == "" {
					cost.up += float64(e.Bytes)
					rounds++
				}
			case participant.EventDownload:
				cost.down += float64(e.Bytes)
			}
		}})
	if err != nil {
		t.Fatalf("%d headless clients, graph %q: %v", n, graph, err)
	}
	var rs []struct {
		Status     string
		StartedAt  time.Time `json:"started_at"`
		FinishedAt time.Time `json:"finished_at"`
	}
	resp, err := http.Get(base + "/api/runs/" + run.ID + "/rounds")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Status != "aggregated" {
			t.Fatalf("round %d of %d clients, graph %q: %s", i+1, n, graph, r.Status)
		}
		if i > 0 {
			cost.seconds += r.FinishedAt.Sub(r.StartedAt).Seconds() / float64(len(rs)-1)
		}
	}
	rounds = max(rounds, 1)
	cost.ms /= rounds
	cost.up /= rounds
	cost.down /= rounds
	return cost
}
