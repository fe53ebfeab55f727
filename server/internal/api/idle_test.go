package api_test

import (
	"runtime"
	"testing"
	"time"
)

// An idle joined participant costs the server two goroutines (its session,
// which reads, and its writer) and nothing more: no HTTP handler, no
// pinger. make bench-load measures the memory that buys at 10,000 sockets
// (README.md, "Scale on this machine"); this guards its cause.
func TestIdleSocketCostsTwoGoroutines(t *testing.T) {
	ts := newTestServer(t)
	const n = 40
	run := ts.createRun(map[string]any{"model": "mlp:32", "clients": n + 10, "start_clients": n + 10,
		"clients_per_round": 1})
	settled := func() int {
		// Goroutines that are ending (a handler returning) settle first.
		last := -1
		for range 100 {
			g := runtime.NumGoroutine()
			if g == last {
				return g
			}
			last = g
			time.Sleep(20 * time.Millisecond)
		}
		return last
	}
	before := settled()
	for range n {
		ts.rawJoin(run, nil)
	}
	after := settled()
	if per := float64(after-before) / n; per > 2 {
		t.Errorf("goroutines per idle joined socket = %.2f (%d → %d for %d sockets); want ≤ 2", per, before, after, n)
	}
}
