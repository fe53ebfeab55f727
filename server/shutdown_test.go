package main

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qflare/qflare/wasmclient/headless"
)

// TestGracefulShutdownOnSIGTERM does to SIGTERM what TestResumeAfterSIGKILL
// does to SIGKILL: a round is open with three of four updates accepted
// when the server gets SIGTERM. The server must exit with status 0 well
// within --grace, having told the connected clients that it restarts (a
// bye, so they reconnect rather than give up); started again on the same
// database, it finishes the round with the three stored updates and the
// fourth client's: nothing accepted is lost, nothing is stored twice.
func TestGracefulShutdownOnSIGTERM(t *testing.T) {
	bin := serverBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	db := filepath.Join(dir, "qflare.db")
	const grace = 20 * time.Second
	srv := startServerLogs(t, bin, addr, db, "--grace", grace.String())

	run := createRun(t, base, map[string]any{"model": "mnist-2nn", "rounds": 1, "clients": 100, "clients_per_round": 4,
		"start_clients": 4, "min_clients": 4, "batch": 20, "eval_limit": 1000, "round_deadline": "10m"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clientLogs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(clientLogs, nil))
	done := make(chan error, 2)
	for _, slow := range []float64{1, 40} { // three fast clients, one slow one
		n := 3
		if slow > 1 {
			n = 1
		}
		go func() {
			done <- headless.Run(ctx, &headless.Options{Server: base, Run: run.ID, Token: run.token(), Clients: n,
				SlowMin: slow, SlowMax: slow, Seed: uint64(slow), Log: log})
		}()
	}
	var before []update
	waitUntil(t, 2*time.Minute, "three accepted updates", func() bool {
		before = accepted(getUpdates(t, base, run.ID))
		return len(before) == 3
	})

	if out, err := exec.Command(bin, "health", "--addr", addr).CombinedOutput(); err != nil || !strings.Contains(string(out), `"ready"`) {
		t.Errorf("health on a ready server = %v: %s; want exit 0 and the readiness answer", err, out)
	}

	sent := time.Now()
	srv.cmd.Process.Signal(syscall.SIGTERM)
	err := srv.cmd.Wait()
	took := time.Since(sent)
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Fatalf("server exited with %v after SIGTERM; want status 0\n%s", err, tail(srv.logs.String(), 20))
	case err != nil:
		t.Fatal(err)
	}
	t.Logf("SIGTERM with %d accepted updates in the open round: exit status 0 after %v", len(before), took.Round(time.Millisecond))
	if took > grace/2 {
		t.Errorf("shutdown took %v; want well within --grace %v", took, grace)
	}
	for _, want := range []string{"shutting down: draining", "shut down"} {
		if !strings.Contains(srv.logs.String(), want) {
			t.Errorf("server log lacks %q:\n%s", want, tail(srv.logs.String(), 20))
		}
	}
	if out, err := exec.Command(bin, "health", "--addr", addr).CombinedOutput(); err == nil {
		t.Errorf("health after the server exited = exit 0: %s; want a failure", out)
	}
	waitUntil(t, 10*time.Second, "the clients to log the server's bye", func() bool {
		return strings.Contains(clientLogs.String(), "shutting down for a restart")
	})

	startServerLogs(t, bin, addr, db) // the clients reconnect by themselves
	checkResumed(t, base, run.ID, before, 4, "SIGTERM")
	if all := getUpdates(t, base, run.ID); len(all) != 4 {
		t.Errorf("round 1 stored %d updates; want exactly the 4 accepted ones: %+v", len(all), all)
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("headless clients: %v", err)
		}
	}
}
