package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qflare/qflare/wasmclient/headless"
)

// TestResumeAfterSIGKILL kills the server with SIGKILL in the middle of a
// round, after it accepted three of four updates, starts it again on the
// same database, and checks that the round completes with those three
// updates (not re-sent: the same stored rows) plus the fourth: nothing
// accepted is lost.
func TestResumeAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	bin := serverBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	db := filepath.Join(dir, "qflare.db")
	srv := startServer(t, bin, addr, db)

	run := createRun(t, base, map[string]any{"model": "mnist-2nn", "rounds": 1, "clients": 100, "clients_per_round": 4,
		"start_clients": 4, "min_clients": 4, "batch": 20, "eval_limit": 1000, "round_deadline": "10m"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	for _, slow := range []float64{1, 40} { // three fast clients, one slow one
		n := 3
		if slow > 1 {
			n = 1
		}
		go func() {
			done <- headless.Run(ctx, &headless.Options{Server: base, Run: run.ID, Token: run.token(), Clients: n,
				SlowMin: slow, SlowMax: slow, Seed: uint64(slow)})
		}()
	}
	var before []update
	waitUntil(t, 2*time.Minute, "three accepted updates", func() bool {
		before = accepted(getUpdates(t, base, run.ID))
		return len(before) == 3
	})
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	t.Logf("killed the server with %d accepted updates in the open round", len(before))

	startServer(t, bin, addr, db) // the clients reconnect by themselves
	checkResumed(t, base, run.ID, before, 4, "the kill")
	if all := getUpdates(t, base, run.ID); len(all) != 4 {
		t.Errorf("round 1 stored %d updates; want exactly the 4 accepted ones (none sent twice): %+v", len(all), all)
	}
	var rounds []struct {
		Status       string
		NAccepted    int                `json:"n_accepted"`
		ModelVersion int                `json:"model_version"`
		Metrics      map[string]float64 `json:"metrics"`
	}
	getJSON(t, base+"/api/runs/"+run.ID+"/rounds", &rounds)
	if len(rounds) != 1 || rounds[0].Status != "aggregated" || rounds[0].NAccepted != 4 || rounds[0].ModelVersion != 1 {
		t.Errorf("rounds after restart = %+v; want round 1 aggregated into model version 1", rounds)
	}
	if len(rounds) == 1 && rounds[0].Metrics["used"] != 4 {
		t.Errorf("the aggregate used %v updates; want all 4 (3 replayed from the store, 1 new)", rounds[0].Metrics["used"])
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("headless clients: %v", err)
		}
	}
}

type update struct {
	ID       int64  `json:"id"`
	ClientID string `json:"client_id"`
	Accepted bool   `json:"accepted"`
}

func accepted(us []update) []update {
	var out []update
	for _, u := range us {
		if u.Accepted {
			out = append(out, u)
		}
	}
	return out
}

func containsID(us []update, id int64) bool {
	for _, u := range us {
		if u.ID == id {
			return true
		}
	}
	return false
}

func getUpdates(t *testing.T, base, run string) []update {
	var us []update
	getJSON(t, base+"/api/runs/"+run+"/updates?round=1", &us)
	return us
}

// startServer runs the server binary and waits until it answers.
func startServer(t *testing.T, bin, addr, db string) *exec.Cmd {
	t.Helper()
	return startServerLogs(t, bin, addr, db).cmd
}

// process is a server binary started by a test.
type process struct {
	cmd  *exec.Cmd
	logs *syncBuffer
}

// startServerLogs runs the server binary with extra flags, waits until it
// is ready (/readyz 200), and keeps its output.
func startServerLogs(t *testing.T, bin, addr, db string, extra ...string) *process {
	t.Helper()
	return startServerUntil(t, bin, addr, db, "the server to be ready", func(*syncBuffer) bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, extra...)
}

// startServerUntil runs the server binary with extra flags, keeps its
// output (shown if the test fails) and waits up to a minute for ready.
func startServerUntil(t *testing.T, bin, addr, db, what string, ready func(logs *syncBuffer) bool, extra ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--db", db, "--admin-token", "admin"}, extra...)...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("server output:\n%s", tail(logs.String(), 40))
		}
	})
	waitUntil(t, time.Minute, what, func() bool { return ready(logs) })
	return &process{cmd: cmd, logs: logs}
}

// checkResumed waits for the restarted server to finish the run, then
// checks that its first round (or step) holds exactly want accepted
// updates, among them every update acknowledged before the restart
// (before). when says what happened to the server.
func checkResumed(t *testing.T, base, run string, before []update, want int, when string) {
	t.Helper()
	waitUntil(t, 3*time.Minute, "the run to finish", func() bool {
		var r struct{ Status string }
		getJSON(t, base+"/api/runs/"+run, &r)
		return r.Status == "finished"
	})
	after := accepted(getUpdates(t, base, run))
	if len(after) != want {
		t.Fatalf("the first round has %d accepted updates after the restart; want %d: %+v", len(after), want, after)
	}
	for _, b := range before {
		if !containsID(after, b.ID) {
			t.Errorf("update %d acknowledged before %s is gone after the restart", b.ID, when)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// binary is the server binary the process tests share, built once.
var binary struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// serverBinary builds the server binary once for the package's tests (it
// is removed by TestMain).
func serverBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	binary.once.Do(func() {
		if binary.dir, binary.err = os.MkdirTemp("", "qflare-server-test-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "qflare")
		if out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

type createdRun struct {
	ID      string `json:"id"`
	JoinURL string `json:"join_url"`
}

func (r createdRun) token() string { _, tok, _ := strings.Cut(r.JoinURL, "token="); return tok }

func createRun(t *testing.T, base string, cfg map[string]any) createdRun {
	t.Helper()
	b, _ := json.Marshal(cfg)
	req, _ := http.NewRequest("POST", base+"/api/runs", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer admin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r createdRun
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &r) != nil {
		t.Fatalf("POST /api/runs = %s: %s", resp.Status, body)
	}
	return r
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestAsyncResumeAfterSIGKILL: SIGKILL in the middle of an async step's
// buffer; after a restart on the same database the step completes with
// the updates acknowledged before the kill (the same stored rows, not sent
// again) and new ones: nothing acknowledged is lost.
func TestAsyncResumeAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	bin := serverBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	db := filepath.Join(dir, "qflare.db")
	srv := startServer(t, bin, addr, db)

	run := createRun(t, base, map[string]any{"model": "mnist-2nn", "rounds": 1, "clients": 100, "mode": "async",
		"buffer": 4, "concurrency": 4, "start_clients": 4, "min_clients": 1, "batch": 20, "eval_limit": 1000})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- headless.Run(ctx, &headless.Options{Server: base, Run: run.ID, Token: run.token(), Clients: 4,
			SlowMin: 10, SlowMax: 30, Seed: 5})
	}()
	var before []update
	waitUntil(t, 2*time.Minute, "two accepted updates in the open step", func() bool {
		before = accepted(getUpdates(t, base, run.ID))
		return len(before) >= 2
	})
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	t.Logf("killed the server with %d accepted updates in the open step", len(before))
	if len(before) >= 4 {
		t.Skip("the step filled before the kill; nothing to resume")
	}

	startServer(t, bin, addr, db)                        // the clients reconnect by themselves
	checkResumed(t, base, run.ID, before, 4, "the kill") // the step's buffer
	var rounds []struct {
		Status  string
		Metrics map[string]float64 `json:"metrics"`
	}
	getJSON(t, base+"/api/runs/"+run.ID+"/rounds", &rounds)
	if len(rounds) != 1 || rounds[0].Status != "aggregated" || rounds[0].Metrics["used"] != 4 {
		t.Errorf("steps after the restart = %+v; want step 1 aggregated from 4 updates (%d replayed)", rounds, len(before))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("headless clients: %v", err)
	}
}
