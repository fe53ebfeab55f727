package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
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

// heteroFlags are the flags of a small heterogeneous simulation on virtual
// device time.
func heteroFlags(t *testing.T, extra ...string) *simFlags {
	t.Helper()
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	var f simFlags
	f.register(fs)
	// 30 clients of 200 samples each (300 slices, 30 join): cheap even
	// under the race detector.
	args := append([]string{"--model", "mlp:32", "--clients", "300", "--join", "30", "--eval-limit", "1000", "--clock", "virtual",
		"--profiles", "phone-low:0.3,laptop:0.7"}, extra...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &f
}

// TestSimAsyncSlowDevicesAreStaler: in an async run on virtual device time
// the phone-low clients' updates arrive more steps stale than the
// laptops', every server step takes the buffer, and the summary reports
// virtual time.
func TestSimAsyncSlowDevicesAreStaler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := heteroFlags(t, "--mode", "async", "--buffer", "5", "--concurrency", "10", "--rounds", "12")
	res, err := simulate(ctx, f, io.Discard, func(simRound) {})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "async" || res.Rounds != 12 || res.VirtualSeconds == nil || *res.VirtualSeconds <= 0 {
		t.Fatalf("summary %+v; want 12 async steps and the virtual time they took", res.simSummary)
	}
	for _, l := range res.Lines {
		if l.Accepted != 5 {
			t.Errorf("step %d took %d updates; want the buffer, 5", l.Round, l.Accepted)
		}
	}
	sum, n := map[string]float64{}, map[string]float64{}
	for _, u := range res.Updates {
		if u.Accepted {
			sum[u.Profile] += float64(u.Staleness)
			n[u.Profile]++
		}
	}
	slow, fast := sum["phone-low"]/n["phone-low"], sum["laptop"]/n["laptop"]
	if n["phone-low"] == 0 || !(slow > fast) {
		t.Errorf("mean staleness: phone-low %.2f (%v updates), laptop %.2f (%v); want the slow devices staler", slow, n["phone-low"], fast, n["laptop"])
	}
}

// TestSimVirtualIsRepeatable: on virtual time a seeded heterogeneous run
// (profiles, drops, offline periods) gives the same virtual times and
// accuracies each time, whatever the machine's load.
func TestSimVirtualIsRepeatable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var runs [2]*simResult
	for i := range runs {
		res, err := simulate(ctx, heteroFlags(t, "--rounds", "4", "--fraction", "0.2", "--drop", "0.2"), io.Discard, func(simRound) {})
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = res
	}
	a, b := runs[0], runs[1]
	if *a.VirtualSeconds != *b.VirtualSeconds || a.FinalAccuracy != b.FinalAccuracy || len(a.Lines) != len(b.Lines) {
		t.Fatalf("two runs: virtual %vs / %vs, accuracy %v / %v; want the same", *a.VirtualSeconds, *b.VirtualSeconds, a.FinalAccuracy, b.FinalAccuracy)
	}
	for i := range a.Lines {
		if *a.Lines[i].VirtualSeconds != *b.Lines[i].VirtualSeconds {
			t.Errorf("round %d ended at virtual %vs and %vs", a.Lines[i].Round, *a.Lines[i].VirtualSeconds, *b.Lines[i].VirtualSeconds)
		}
	}
}
