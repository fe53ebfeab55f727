package main

import (
	"bufio"
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/wasmclient/headless"
)

// TestBackupDuringRunAndResume backs the database up with `backup` while
// the server trains a run with real clients, checks /metrics, shows that
// `restore` refuses the live database, stops the server, restores the
// backup over the database (the newer one is moved aside) and starts the
// server again: the run resumes from the backup's model and finishes.
func TestBackupDuringRunAndResume(t *testing.T) {
	bin := serverBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	db := filepath.Join(dir, "qflare.db")
	srv := startServerLogs(t, bin, addr, db)
	const rounds = 6
	run := createRun(t, base, map[string]any{"model": "mnist-2nn", "rounds": rounds, "clients": 100, "clients_per_round": 3,
		"start_clients": 3, "min_clients": 3, "batch": 20, "eval_limit": 1000, "round_deadline": "10m"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- headless.Run(ctx, &headless.Options{Server: base, Run: run.ID, Token: run.token(), Clients: 3, SlowMin: 2, SlowMax: 2})
	}()
	version := func() int {
		var r struct {
			ModelVersion int `json:"model_version"`
		}
		getJSON(t, base+"/api/runs/"+run.ID, &r)
		return r.ModelVersion
	}
	waitUntil(t, 2*time.Minute, "two rounds aggregated", func() bool { return version() >= 2 })

	backup := filepath.Join(dir, "backup.db")
	out, err := exec.Command(bin, "backup", "--db", db, "--out", backup).CombinedOutput()
	if err != nil {
		t.Fatalf("backup while serving: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	backedUp := storedVersion(t, backup, run.ID)
	if backedUp < 2 || backedUp >= rounds {
		t.Fatalf("the backup holds model version %d; want one taken mid-run (2..%d)", backedUp, rounds-1)
	}

	checkMetrics(t, base)

	out, err = exec.Command(bin, "restore", "--from", backup, "--db", db).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("restore over the database of a running server = %v\n%s; want it refused as in use", err, out)
	}

	waitUntil(t, 2*time.Minute, "a round after the backup", func() bool { return version() > backedUp })
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.cmd.Wait(); err != nil {
		t.Fatalf("server after SIGTERM: %v", err)
	}
	out, err = exec.Command(bin, "restore", "--from", backup, "--db", db).CombinedOutput()
	if err != nil {
		t.Fatalf("restore with the server stopped: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	aside, _ := filepath.Glob(db + ".before-restore-*")
	if len(aside) == 0 || storedVersion(t, aside[0], run.ID) <= backedUp {
		t.Errorf("the newer database was not kept aside (found %v)", aside)
	}

	startServerLogs(t, bin, addr, db)
	if v := version(); v != backedUp {
		t.Errorf("after the restore the run is at model version %d; want the backup's %d", v, backedUp)
	}
	waitUntil(t, 3*time.Minute, "the restored run to finish", func() bool {
		var r struct{ Status string }
		getJSON(t, base+"/api/runs/"+run.ID, &r)
		return r.Status == "finished"
	})
	var rs []struct {
		Round  int
		Status string
	}
	getJSON(t, base+"/api/runs/"+run.ID+"/rounds", &rs)
	aggregated := 0
	for _, r := range rs {
		if r.Status == "aggregated" {
			aggregated++
		}
	}
	if aggregated != rounds {
		t.Errorf("the restored run aggregated %d rounds; want %d: %+v", aggregated, rounds, rs)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("headless clients: %v", err)
	}
}

// storedVersion reads a run's model version from a database file.
func storedVersion(t *testing.T, path, run string) int {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Run(context.Background(), run)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r.ModelVersion
}

// checkMetrics scrapes /metrics of a server that has aggregated rounds with
// real clients and checks that the counters moved.
func checkMetrics(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		got[line[:i]] = v
	}
	atLeast := func(key string, min float64) {
		t.Helper()
		if v, ok := got[key]; !ok || v < min {
			t.Errorf("/metrics %s = %v (present %v); want at least %v", key, v, ok, min)
		}
	}
	atLeast(`qflare_rounds_total{result="aggregated"}`, 2)
	atLeast(`qflare_round_duration_seconds_count`, 2)
	atLeast(`qflare_updates_total{code="",verdict="accepted"}`, 6)
	// 6 updates and models of 199,210 float32s, zstd-compressed to ~730 KB
	atLeast(`qflare_participant_bytes_total{direction="up"}`, 6*700_000)
	atLeast(`qflare_participant_bytes_total{direction="down"}`, 6*700_000)
	atLeast(`qflare_participant_connections`, 3)
	atLeast(`qflare_sqlite_write_duration_seconds_count{op="commit_round"}`, 2)
	atLeast(`qflare_sqlite_write_duration_seconds_count{op="add_update"}`, 6)
	atLeast(`qflare_runs{status="running"}`, 1)
	atLeast(`qflare_run_clients_connected{run="`+runIDFrom(got)+`"}`, 3)
	atLeast(`qflare_http_requests_total{code="200",route="GET /api/runs/{id}"}`, 1)
	atLeast(`go_goroutines`, 1)
	atLeast(`process_resident_memory_bytes`, 1)
	if t.Failed() {
		t.Logf("scraped %d series", len(got))
	}
}

// runIDFrom finds the run label of the per-run gauges.
func runIDFrom(series map[string]float64) string {
	for k := range series {
		if id, ok := strings.CutPrefix(k, `qflare_run_round{run="`); ok {
			return strings.TrimSuffix(id, `"}`)
		}
	}
	return ""
}
