//go:build !js

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/server/edge/workerd"
	"github.com/qflare/qflare/wasmclient/headless"
)

// serveProc is the server binary (qflare serve) in its own process.
type serveProc struct {
	t    *testing.T
	base string
	cmd  *exec.Cmd
	done chan error
}

// startServe builds and starts `qflare serve` on a free port with a fresh
// database and edge shards allowed.
func startServe(t *testing.T) *serveProc {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "qflare")
	build := exec.Command("go", "build", "-o", bin, "./server")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the server: %v\n%s", err, out)
	}
	logf, _ := os.Create(filepath.Join(dir, "serve.log"))
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "q.db"),
		"--admin-token", adminToken, "--shard-token", shardToken)
	cmd.Stderr = logf
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &serveProc{t: t, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("serve's log (last 4000 bytes):\n%s", tail(b, 4000))
		}
	})
	sc := bufio.NewScanner(stdout)
	re := regexp.MustCompile(`serving on (http://\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			s.base = m[1]
			go io.Copy(io.Discard, stdout)
			return s
		}
	}
	t.Fatal("the server did not start")
	return nil
}

// api calls the server's REST API as the admin.
func (s *serveProc) api(method, path string, body, out any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		s.t.Fatalf("%s %s = %s: %s", method, path, res.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// get returns a GET's body.
func (s *serveProc) get(path string) []byte {
	s.t.Helper()
	res, err := http.Get(s.base + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		s.t.Fatalf("GET %s = %s", path, res.Status)
	}
	return b
}

// counter reads a counter of /metrics, e.g.
// qflare_shard_bytes_total{direction="up"}.
func (s *serveProc) counter(series string) float64 {
	s.t.Helper()
	for _, l := range strings.Split(string(s.get("/metrics")), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				s.t.Fatal(err)
			}
			return f
		}
	}
	s.t.Fatalf("/metrics has no %s", series)
	return 0
}

type e2eRound struct {
	Round        int     `json:"round"`
	Status       string  `json:"status"`
	NAccepted    int     `json:"n_accepted"`
	TestAccuracy float64 `json:"test_accuracy"`
}

// train creates a run, runs its clients to the end through bases (an equal
// share each) and returns it with its rounds and the origin's ingress.
func (s *serveProc) train(name string, cfg map[string]any, clients int, series string, bases ...string) (id string, rounds []e2eRound, ingress float64) {
	s.t.Helper()
	cfg["name"] = name
	var run struct {
		ID      string `json:"id"`
		JoinURL string `json:"join_url"`
	}
	s.api("POST", "/api/runs", cfg, &run)
	_, token, _ := strings.Cut(run.JoinURL, "token=")
	before := s.counter(series)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	errs := make(chan error, len(bases))
	start := time.Now()
	for _, base := range bases {
		go func() {
			errs <- headless.Run(ctx, &headless.Options{Server: base, Run: run.ID, Token: token, Clients: clients / len(bases),
				SlowMin: 1, SlowMax: 1, Seed: 1})
		}()
	}
	for range bases {
		if err := <-errs; err != nil {
			s.t.Fatalf("%s: headless clients: %v", name, err)
		}
	}
	ingress = s.counter(series) - before
	s.api("GET", "/api/runs/"+run.ID+"/rounds", nil, &rounds)
	for _, r := range rounds {
		s.t.Logf("%s: round %d %s, %d accepted, test accuracy %.4f", name, r.Round, r.Status, r.NAccepted, r.TestAccuracy)
	}
	s.t.Logf("%s: %d rounds in %v, %.0f bytes into the origin", name, len(rounds), time.Since(start).Round(time.Second), ingress)
	return run.ID, rounds, ingress
}

// TestEdgeEndToEnd is make test-edge: the server binary, two shards under
// workerd and 40 headless clients (20 through each shard) train five
// rounds of mnist-2nn; the same clients then train the same run directly.
// It prints one JSON line with the origin's ingress per round both ways,
// the final accuracy and whether the two runs' models are the same, bit
// for bit (every client trains every round, seeded by its slice, so the
// updates are the same: the partials merged at the origin must give plain
// FedAvg's model). Opt-in: QFLARE_TEST_EDGE=1 (a few minutes here).
func TestEdgeEndToEnd(t *testing.T) {
	needWorkerd(t)
	if os.Getenv("QFLARE_TEST_EDGE") == "" {
		t.Skip("set QFLARE_TEST_EDGE=1 (make test-edge) to run the end-to-end edge measurement")
	}
	const clients, rounds = 40, 5
	s := startServe(t)
	var shards []string
	for _, name := range []string{"eu", "us"} {
		logf, _ := os.Create(filepath.Join(t.TempDir(), "workerd-"+name+".log"))
		sh, err := workerd.Start(context.Background(), workerd.Options{Bin: workerdBin, Bundle: bundle, Name: name,
			Origin: s.base, Token: shardToken, Log: logf})
		if err != nil {
			t.Fatal(err)
		}
		defer sh.Kill()
		if err := sh.WaitLinked(20 * time.Second); err != nil {
			t.Fatal(err)
		}
		shards = append(shards, sh.URL)
	}
	cfg := func() map[string]any {
		return map[string]any{"model": "mnist-2nn", "clients": clients, "clients_per_round": clients, "min_clients": clients,
			"rounds": rounds, "batch": 10, "lr": 0.05, "seed": 1, "round_deadline": "10m"}
	}
	edged, er, edgeIn := s.train("through two shards", cfg(), clients, `qflare_shard_bytes_total{direction="up"}`, shards...)
	direct, dr, directIn := s.train("direct", cfg(), clients, `qflare_participant_bytes_total{direction="up"}`, s.base)
	if len(er) != rounds || len(dr) != rounds {
		t.Fatalf("%d rounds through shards, %d directly; want %d each", len(er), len(dr), rounds)
	}
	equal := true
	for v := 1; v <= rounds; v++ {
		a := tensorData(t, s.get(fmt.Sprintf("/api/runs/%s/model?version=%d", edged, v)))
		b := tensorData(t, s.get(fmt.Sprintf("/api/runs/%s/model?version=%d", direct, v)))
		equal = equal && bytes.Equal(a, b)
	}
	line, _ := json.Marshal(struct {
		What        string  `json:"what"`
		Shards      int     `json:"shards"`
		Clients     int     `json:"clients"`
		OriginUp    int64   `json:"origin_bytes_up_per_round"`
		DirectUp    int64   `json:"direct_bytes_up_per_round"`
		FinalAcc    float64 `json:"final_accuracy"`
		BitwiseSame bool    `json:"bitwise_equal"`
	}{"edge", len(shards), clients, int64(edgeIn / rounds), int64(directIn / rounds), er[rounds-1].TestAccuracy, equal})
	fmt.Println(string(line))
	for i, r := range er {
		if r.NAccepted != clients {
			t.Errorf("round %d through shards accepted %d; want %d", r.Round, r.NAccepted, clients)
		}
		if i > 0 && r.TestAccuracy < er[0].TestAccuracy {
			t.Errorf("accuracy through shards fell from %.4f (round 1) to %.4f (round %d)", er[0].TestAccuracy, r.TestAccuracy, r.Round)
		}
	}
	if !equal {
		t.Error("the models through shards differ from the direct run's: partials did not give plain FedAvg's bits")
	}
	if edgeIn*4 > directIn {
		t.Errorf("the origin took %.0f bytes a round through shards and %.0f directly; want about two partials, not 40 updates",
			edgeIn/rounds, directIn/rounds)
	}
}

// tensorData returns the tensors of a safetensors file: what follows its
// header (which names the run).
func tensorData(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("a safetensors file of %d bytes", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		t.Fatalf("a safetensors header of %d bytes in %d", n, len(b))
	}
	return b[8+n:]
}
