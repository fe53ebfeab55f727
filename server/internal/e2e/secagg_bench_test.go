package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecAggMemberCostInChromium runs package secagg's BenchmarkMember
// (one member's whole secure aggregation work per round, mnist-2nn) as
// WebAssembly in a Web Worker of headless Chromium, as a tab runs it, for
// rounds of 10 and 100 members on the complete graph and on k:8. It is a
// measurement, not an assertion: run it with QFLARE_BENCH_SECAGG=1
// (QFLARE_SECAGG_MEMBERS overrides the sizes); it prints JSON lines, each
// size and graph's median over QFLARE_SECAGG_PASSES passes (default 3) after
// a warm-up pass.
func TestSecAggMemberCostInChromium(t *testing.T) {
	if os.Getenv("QFLARE_BENCH_SECAGG") != "1" {
		t.Skip("set QFLARE_BENCH_SECAGG=1 to measure a secure aggregation member's cost in Chromium")
	}
	needBrowser(t)
	dir := t.TempDir()
	build := exec.Command("go", "test", "-c", "-o", filepath.Join(dir, "secagg.wasm"), "./shared/secagg")
	build.Dir, build.Env = repoRoot, append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the secagg test binary for wasm: %v\n%s", err, out)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	execJS, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	members := os.Getenv("QFLARE_SECAGG_MEMBERS")
	if members == "" {
		members = "10,100"
	}
	// A first pass warms the engine's optimizing compiler up (the first
	// results come from its baseline code, several times slower); the
	// median of the passes after it is reported.
	passes := 3
	if p, err := strconv.Atoi(os.Getenv("QFLARE_SECAGG_PASSES")); err == nil && p > 0 {
		passes = p
	}
	members = strings.Repeat(members+",", passes) + members
	mux := http.NewServeMux()
	mux.HandleFunc("/wasm_exec.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(execJS)
	})
	mux.HandleFunc("/secagg.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		http.ServeFile(w, r, filepath.Join(dir, "secagg.wasm"))
	})
	mux.HandleFunc("/worker.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprintf(w, `importScripts('/wasm_exec.js');
const log = console.log;
console.log = (...a) => postMessage(a.join(' '));
const go = new Go();
go.argv = ['secagg.test', '-test.run=^$', '-test.bench=^BenchmarkMember$', '-test.benchtime=5x'];
go.env = {QFLARE_SECAGG_MEMBERS: %q};
go.exit = (code) => postMessage('EXIT ' + code);
WebAssembly.instantiateStreaming(fetch('/secagg.wasm'), go.importObject).then(r => go.run(r.instance)).catch(e => postMessage('ERROR ' + e));
`, members)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>secagg cost</title><script>
window.lines = [];
new Worker('/worker.js').onmessage = (e) => window.lines.push(String(e.data));
</script>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tb := openTab(t, browser(t), "bench", srv.URL)
	tb.waitFor("the benchmark to finish", `window.lines.some(l => l.startsWith('EXIT') || l.startsWith('ERROR'))`, 15*time.Minute)
	lines := eval[[]string](tb, `window.lines`)
	ua := eval[string](tb, `navigator.userAgent`)
	re := regexp.MustCompile(`^BenchmarkMember/n=(\d+)/(\S+)\s+\d+\s+(\d+) ns/op\s+(\d+) bytes_down\s+(\d+) bytes_up`)
	results := map[string]map[string]any{}
	passMS := map[string][]float64{} // per size and graph, ms per round of each pass after the warm-up
	var order []string
	for _, l := range strings.Split(strings.Join(lines, "\n"), "\n") {
		m := re.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			if strings.HasPrefix(l, "ERROR") || strings.Contains(l, "FAIL") || strings.Contains(l, "panic") {
				t.Errorf("benchmark output: %s", l)
			}
			continue
		}
		n, _ := strconv.Atoi(m[1])
		ns, _ := strconv.ParseFloat(m[3], 64)
		down, _ := strconv.Atoi(m[4])
		up, _ := strconv.Atoi(m[5])
		graph, _, _ := strings.Cut(m[2], "#") // a repeated benchmark's name ends in #01
		key := m[1] + "/" + graph
		if results[key] == nil {
			order = append(order, key)
			results[key] = map[string]any{"what": "secagg_member", "target": "chromium", "n": n, "graph": graph,
				"bytes_up": up, "bytes_down": down, "browser": ua}
			passMS[key] = nil // the warm-up pass
			continue
		}
		passMS[key] = append(passMS[key], ns/1e6)
	}
	for _, k := range order {
		ms := passMS[k]
		if len(ms) == 0 {
			t.Errorf("%s: no pass after the warm-up", k)
			continue
		}
		sort.Float64s(ms)
		results[k]["client_ms"] = math.Round(10*ms[len(ms)/2]) / 10 // the median pass
		results[k]["passes_ms"] = ms
		b, _ := json.Marshal(results[k])
		fmt.Println(string(b))
	}
	if len(order) == 0 {
		t.Fatalf("no benchmark results in the output:\n%s", strings.Join(lines, "\n"))
	}
}
