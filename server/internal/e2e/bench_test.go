package e2e

import (
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
	const rounds = 4
	speed := map[int][]float64{}
	kernel := ""

	for rep := 0; rep < 2; rep++ {
		for _, workers := range []int{1, 2} {
			_, join := e.createRun(map[string]any{"name": fmt.Sprintf("bench: %d workers", workers), "model": "mnist-2nn",
				"dataset": "mnist", "clients": 10, "rounds": rounds, "fraction": 1, "min_clients": 1, "batch": 64,
				"lr": 0.05, "eval_limit": 500, "round_deadline": "300s"})
			tb := openTab(t, b, fmt.Sprintf("workers=%d", workers), fmt.Sprintf("%s%s&workers=%d", e.srv.URL, join, workers))
			tb.waitFor("the last round uploaded", fmt.Sprintf(`(qflare.rounds[%d] || {}).result === 'accepted'`, rounds), 5*time.Minute)
			for r := 2; r <= rounds; r++ { // round 1 warms the engine up
				s := eval[float64](tb, fmt.Sprintf(`qflare.rounds[%d].speed`, r))
				speed[workers] = append(speed[workers], s)
				kernel = eval[string](tb, `qflare.kernel`)
				t.Logf("workers=%d round %d: %.0f samples/s", workers, r, s)
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
	t.Logf("mnist-2nn batch 64, 6000 samples (%s kernel): 1 worker %.0f samples/s, 2 workers %.0f samples/s: speed-up %.2fx", kernel, one, two, two/one)
	if os.Getenv("QFLARE_BENCH_JSON") == "1" { // make bench's lines
		for _, w := range []int{1, 2} {
			b, _ := json.Marshal(map[string]any{"what": "train", "model": "mnist-2nn", "batch": 64, "target": "chromium",
				"kernel": "qflare-" + kernel, "workers": w, "samples_per_s": math.Round(mean(speed[w]))})
			fmt.Println(string(b))
		}
		b, _ := json.Marshal(map[string]any{"what": "ratio", "model": "mnist-2nn", "batch": 64, "of": "chromium 2 workers",
			"over": "chromium 1 worker", "ratio": math.Round(two/one*1000) / 1000})
		fmt.Println(string(b))
	}
}
