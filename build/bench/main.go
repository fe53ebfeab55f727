// Command bench is `make bench`: it measures training speed natively and in
// wasm (node, built like the browser's client), Sgemm GFLOPS at the models'
// shapes, codec speeds, and TF.js (../shared/peers/tfjs/run.sh) on the same
// machine in the same run, and prints one JSON line per figure, then the
// ratios. Progress goes to stderr.
//
//	go run ./build/bench [-count 3] [-quick] [-tfjs ../shared/peers/tfjs/run.sh]
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	count   = flag.Int("count", 3, "runs of each benchmark; the median is reported")
	quick   = flag.Bool("quick", false, "one short iteration of everything (to check the harness, not to measure)")
	tfjs    = flag.String("tfjs", "../shared/peers/tfjs/run.sh", "TF.js peer benchmark script (skipped when missing)")
	tfjsSec = flag.Int("tfjs-seconds", 10, "seconds each TF.js measurement runs")
	simdGo  = flag.String("simd-toolchain", "go1.27.3", "Go toolchain for the SIMD128 wasm build (empty: skip)")
	out     = json.NewEncoder(os.Stdout)
)

// line is one printed figure.
type line map[string]any

func emit(l line) { out.Encode(l) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// result is one benchmark's metrics by unit, one value per run.
type result map[string][]float64

// goBench runs go test -bench with env and returns results by benchmark name
// (without the -GOMAXPROCS suffix).
func goBench(env []string, pkg, pattern, benchtime string) (map[string]result, error) {
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, "-count", strconv.Itoa(*count), pkg}
	if *quick {
		args[6], args[8] = "1x", "1"
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return parseBench(&stdout), nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

func parseBench(r io.Reader) map[string]result {
	res := map[string]result{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		if res[m[1]] == nil {
			res[m[1]] = result{}
		}
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				res[m[1]][fields[i+1]] = append(res[m[1]][fields[i+1]], v)
			}
		}
	}
	return res
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(v float64, digits int) float64 {
	p, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', digits, 64), 64)
	return p
}

// wasmEnv returns the environment of a wasm build: plain Go (scalar
// kernel) or the SIMD128 toolchain.
func wasmEnv(simd bool) []string {
	env := []string{"GOOS=js", "GOARCH=wasm"}
	goroot := goEnv("GOROOT", nil)
	if simd {
		env = append(env, "GOTOOLCHAIN="+*simdGo, "GOEXPERIMENT=simd")
		goroot = goEnv("GOROOT", env)
	}
	return append(env, "PATH="+filepath.Join(goroot, "lib", "wasm")+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func goEnv(key string, env []string) string {
	cmd := exec.Command("go", "env", key)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// trainKey names a training figure.
type trainKey struct {
	model  string
	batch  int
	target string
}

var stepName = regexp.MustCompile(`^BenchmarkStep/([^/]+)/batch=(\d+)$`)

func main() {
	flag.Parse()
	start := time.Now()
	train := map[trainKey]float64{}
	emit(line{"what": "machine", "goos": runtime.GOOS, "goarch": runtime.GOARCH, "cpus": runtime.NumCPU(), "cpu": cpuName(), "go": runtime.Version()})

	targets := []struct {
		target, kernel string
		env            []string
	}{
		{"native", "gonum", []string{"GOMAXPROCS=1"}},
		{"wasm", "qflare-scalar", wasmEnv(false)},
	}
	if *simdGo != "" {
		if err := exec.Command("env", append(wasmEnv(true), "go", "version")...).Run(); err == nil {
			targets = append(targets, struct {
				target, kernel string
				env            []string
			}{"wasm", "qflare-simd128", wasmEnv(true)})
		} else {
			logf("toolchain %s unavailable (%v): no SIMD128 figures", *simdGo, err)
		}
	}
	for _, t := range targets {
		logf("training steps, %s (%s kernel)", t.target, t.kernel)
		// Time-based, so each of the -count runs takes many steps after the
		// engine's optimising compiler has kicked in; the median drops the
		// first run's warm-up.
		res, err := goBench(t.env, "./shared/nn", `^BenchmarkStep/(mnist-2nn|mnist-cnn)/batch=(10|64)$`, "3s")
		if err != nil {
			fail(err)
		}
		for name, r := range res {
			m := stepName.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			batch, _ := strconv.Atoi(m[2])
			sps := median(r["samples/s"])
			emit(line{"what": "train", "model": m[1], "batch": batch, "target": t.target, "kernel": t.kernel, "workers": 1, "samples_per_s": round(sps, 4)})
			k := trainKey{m[1], batch, t.target}
			train[k] = max(train[k], sps) // the browser loads the SIMD build where it can
		}
	}
	for _, t := range targets[1:] {
		logf("Sgemm, wasm (%s)", t.kernel)
		res, err := goBench(t.env, "./shared/kernels", `^BenchmarkSgemm/(qflare|gonum)/`, "0.3s")
		if err != nil {
			fail(err)
		}
		sgemm(res, t.kernel)
	}
	for _, t := range targets[:2] {
		logf("codecs, %s", t.target)
		res, err := goBench(t.env, "./shared/wire", `^Benchmark(Encode|Decode)/`, "20x")
		if err != nil {
			fail(err)
		}
		for name, r := range res {
			op, pipeline, _ := strings.Cut(strings.TrimPrefix(name, "Benchmark"), "/")
			emit(line{"what": "codec", "op": strings.ToLower(op), "pipeline": strings.ReplaceAll(pipeline, "=", ":"),
				"target": t.target, "mb_per_s": round(median(r["MB/s"]), 4), "bytes": median(r["payload-bytes"])})
		}
	}
	peers(train)
	ratios(train)
	logf("done in %s", time.Since(start).Round(time.Second))
}

var sgemmName = regexp.MustCompile(`^BenchmarkSgemm/(qflare|gonum)/([^/]+)/(\d+)x(\d+)x(\d+)$`)

func sgemm(res map[string]result, kernel string) {
	gf := map[string]map[string]float64{}
	for name, r := range res {
		m := sgemmName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		mm, _ := strconv.Atoi(m[3])
		n, _ := strconv.Atoi(m[4])
		k, _ := strconv.Atoi(m[5])
		g := median(r["GFLOPS"])
		emit(line{"what": "sgemm", "shape": m[2], "m": mm, "n": n, "k": k, "target": "wasm", "impl": m[1], "kernel": kernel, "gflops": round(g, 3)})
		if gf[m[2]] == nil {
			gf[m[2]] = map[string]float64{}
		}
		gf[m[2]][m[1]] = g
	}
	for shape, g := range gf {
		if g["gonum"] > 0 && strings.HasPrefix(shape, "conv2") {
			emit(line{"what": "ratio", "of": "sgemm " + shape + " qflare (" + kernel + ")", "over": "gonum", "target": "wasm", "ratio": round(g["qflare"]/g["gonum"], 3)})
		}
	}
}

// peers runs the TF.js benchmark for the same models.
func peers(train map[trainKey]float64) {
	if _, err := os.Stat(*tfjs); err != nil {
		logf("TF.js peer %s not found: skipped", *tfjs)
		return
	}
	// TF.js's wasm backend cannot train CNNs (no Conv2DBackpropFilter), so
	// its pure-JS cpu backend is the CNN's peer; one of its steps takes tens
	// of seconds, so it runs once.
	runs := []struct {
		backend, model string
		batch, count   int
	}{{"wasm", "2nn", 64, *count}, {"wasm", "2nn", 10, *count}, {"cpu", "cnn", 10, 1}}
	for _, p := range runs {
		var vals []float64
		n := p.count
		if *quick {
			n = 1
		}
		for i := 0; i < n; i++ {
			logf("TF.js %s %s batch %d (%d/%d)", p.backend, p.model, p.batch, i+1, n)
			secs := *tfjsSec
			if *quick {
				secs = 2
			}
			b, err := exec.Command(*tfjs, p.backend, p.model, strconv.Itoa(p.batch), strconv.Itoa(secs)).Output()
			if err != nil {
				logf("TF.js run failed: %v", err)
				continue
			}
			var r struct {
				SamplesPerS float64 `json:"samples_per_s"`
				Version     string  `json:"version"`
			}
			if json.Unmarshal(bytes.TrimSpace(b), &r) == nil {
				vals = append(vals, r.SamplesPerS)
			}
		}
		if len(vals) == 0 {
			continue
		}
		model := "mnist-" + p.model
		sps := median(vals)
		emit(line{"what": "train", "model": model, "batch": p.batch, "target": "tfjs-" + p.backend, "workers": 1, "samples_per_s": round(sps, 4)})
		train[trainKey{model, p.batch, "tfjs-" + p.backend}] = sps
	}
}

// ratios prints ours over TF.js and wasm over native.
func ratios(train map[trainKey]float64) {
	pairs := []struct {
		model    string
		batch    int
		of, over string
	}{
		{"mnist-2nn", 64, "wasm", "tfjs-wasm"},
		{"mnist-2nn", 10, "wasm", "tfjs-wasm"},
		{"mnist-cnn", 10, "wasm", "tfjs-cpu"},
		{"mnist-2nn", 10, "wasm", "native"},
		{"mnist-2nn", 64, "wasm", "native"},
		{"mnist-cnn", 10, "wasm", "native"},
		{"mnist-cnn", 64, "wasm", "native"},
	}
	for _, p := range pairs {
		a, b := train[trainKey{p.model, p.batch, p.of}], train[trainKey{p.model, p.batch, p.over}]
		if a > 0 && b > 0 {
			emit(line{"what": "ratio", "model": p.model, "batch": p.batch, "of": p.of, "over": p.over, "ratio": round(a/b, 4)})
		}
	}
}

func cpuName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
