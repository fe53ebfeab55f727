package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// TestSimStopsAtTarget: `sim --stop-at-target` ends the run in the round that
// reaches the target and returns, with every virtual client gone (the
// clients selected for the next round used to reconnect forever).
func TestSimStopsAtTarget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	args := []string{"--clients", "100", "--per-round", "5", "--rounds", "20", "--target", "0.5", "--stop-at-target",
		"--eval-limit", "1000", "--json"}
	if err := runSim(ctx, args, &out, io.Discard); err != nil {
		t.Fatalf("sim %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("sim returned only when its context expired: the virtual clients did not leave the stopped run")
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var sum simSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary line %q: %v", lines[len(lines)-1], err)
	}
	if sum.RoundsToTarget == nil || *sum.RoundsToTarget != sum.Rounds || sum.Rounds >= 20 {
		t.Errorf("summary %+v; want the run to stop in the round that reached 0.5", sum)
	}
}
