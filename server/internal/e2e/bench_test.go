package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
	"time"
)

// TestWorkerSpeedup measures a tab's training speed (samples/s, as the
// tab's workers report it with their update) with one and with two Web
// Workers, on mnist-2nn, batch 64, 6000 samples a round. It is a
// measurement, not an assertion: run it with QFLARE_BENCH_WORKERS=1.
func TestWorkerSpeedup(t *testing.T) {
	if os.Getenv("QFLARE_BENCH_WORKERS") != "1" {
		t.Skip("set QFLARE_BENCH_WORKERS=1 to measure 1 vs 2 workers")
	}
	needBrowser(t)
	e := newEnv(t)
	b := browser(t)
	// mnist-2nn trains a 6000-sample slice in about a second, so the
	// per-round coordination of the workers shows; mnist-cnn's 600 samples
	// take seconds, which is where a tab's speed matters most.
	for _, c := range []struct {
		model          string
		clients, batch int
	}{{"mnist-2nn", 10, 64}, {"mnist-cnn", 100, 64}} {
		measureWorkers(t, e, b, c.model, c.clients, c.batch)
	}
}

func measureWorkers(t *testing.T, e *env, b context.Context, model string, clients, batch int) {
	const rounds = 4
	speed := map[int][]float64{}
	kernel := ""
	for rep := 0; rep < 2; rep++ {
		for _, workers := range []int{1, 2} {
			_, join := e.createRun(map[string]any{"name": fmt.Sprintf("bench: %s, %d workers", model, workers), "model": model,
				"dataset": "mnist", "clients": clients, "rounds": rounds, "fraction": 1, "min_clients": 1, "batch": batch,
				"lr": 0.05, "eval_limit": 500, "round_deadline": "300s"})
			tb := openTab(t, b, fmt.Sprintf("workers=%d", workers), fmt.Sprintf("%s%s&workers=%d", e.srv.URL, join, workers))
			tb.waitFor("the last round uploaded", fmt.Sprintf(`(qflare.rounds[%d] || {}).result === 'accepted'`, rounds), 5*time.Minute)
			for r := 2; r <= rounds; r++ { // round 1 warms the engine up
				s := eval[float64](tb, fmt.Sprintf(`qflare.rounds[%d].speed`, r))
				speed[workers] = append(speed[workers], s)
				kernel = eval[string](tb, `qflare.kernel`)
				t.Logf("%s workers=%d round %d: %.0f samples/s", model, workers, r, s)
			}
			tb.cancel()
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	one, two := mean(speed[1]), mean(speed[2])
	t.Logf("%s batch %d (%s kernel): 1 worker %.0f samples/s, 2 workers %.0f samples/s: speed-up %.2fx", model, batch, kernel, one, two, two/one)
	if os.Getenv("QFLARE_BENCH_JSON") == "1" { // make bench's lines
		for _, w := range []int{1, 2} {
			b, _ := json.Marshal(map[string]any{"what": "train", "model": model, "batch": batch, "target": "chromium",
				"kernel": "qflare-" + kernel, "workers": w, "samples_per_s": math.Round(mean(speed[w])*10) / 10})
			fmt.Println(string(b))
		}
		b, _ := json.Marshal(map[string]any{"what": "ratio", "model": model, "batch": batch, "of": "chromium 2 workers",
			"over": "chromium 1 worker", "ratio": math.Round(two/one*1000) / 1000})
		fmt.Println(string(b))
	}
}
