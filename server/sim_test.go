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
	if sum.RoundsToTarget == nil || *sum.RoundsToTarget != sum.Rounds || sum.Rounds >= 20 || sum.Status != "stopped" {
		t.Errorf("summary %+v; want the run stopped in the round that reached 0.5", sum)
	}
}

// TestSimReportsAFailedRun: when no round can produce a model (here a
// deadline no device meets; in the DP study, noise that makes every
// client decline) the run fails before its last round, and sim says so:
// each failed round and the run's error, instead of accuracy 0 for the
// failed rounds and a plain "done".
func TestSimReportsAFailedRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"--model", "mlp:32", "--clients", "300", "--join", "30", "--rounds", "40", "--eval-limit", "1000",
		"--clock", "virtual", "--profiles", "phone-low:1", "--deadline", "100ms"}
	var text bytes.Buffer
	if err := runSim(ctx, args, &text, io.Discard); err != nil {
		t.Fatalf("sim %s: %v", strings.Join(args, " "), err)
	}
	out := text.String()
	if !strings.Contains(out, "round 1 failed: ") || !strings.Contains(out, "the run failed: 10 rounds in a row produced no model") {
		t.Errorf("sim's text output does not say that rounds and the run failed:\n%s", out)
	}
	var js bytes.Buffer
	if err := runSim(ctx, append(args, "--json"), &js, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	var sum simSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary line %q: %v", lines[len(lines)-1], err)
	}
	if sum.Status != "failed" || !strings.Contains(sum.Error, "rounds in a row") || sum.Rounds != 0 {
		t.Errorf("summary %+v; want status failed, the run's error, no round aggregated", sum)
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
// accuracies each time, whatever the machine's load; an asynchronous run
// too, where devices of one profile finish at the same virtual instant and
// the order in which their updates fill the buffer must not be real
// time's.
func TestSimVirtualIsRepeatable(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"sync", []string{"--rounds", "4", "--fraction", "0.2", "--drop", "0.2"}},
		{"async", []string{"--mode", "async", "--buffer", "5", "--concurrency", "10", "--rounds", "8", "--profiles", "laptop:1", "--drop", "0.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var runs [2]*simResult
			for i := range runs {
				res, err := simulate(ctx, heteroFlags(t, tc.args...), io.Discard, func(simRound) {})
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
				la, lb := a.Lines[i], b.Lines[i]
				if *la.VirtualSeconds != *lb.VirtualSeconds || la.TestAccuracy != lb.TestAccuracy || la.MeanStaleness != lb.MeanStaleness {
					t.Errorf("round %d: virtual %vs / %vs, accuracy %v / %v, mean staleness %v / %v; want the same",
						la.Round, *la.VirtualSeconds, *lb.VirtualSeconds, la.TestAccuracy, lb.TestAccuracy, la.MeanStaleness, lb.MeanStaleness)
				}
			}
		})
	}
}

// TestSimSecureAgg: `sim --secure-agg k:4 --drop F --json` runs secure
// rounds with members dropping at any phase; every round line says how its
// secure round went, and the summary carries secure_agg (threshold, graph,
// dropped members, aborted rounds and a member's costs) beside the usual
// fields.
func TestSimSecureAgg(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	args := []string{"--model", "mlp:32", "--clients", "300", "--join", "12", "--fraction", "1", "--rounds", "3",
		"--eval-limit", "1000", "--seed", "3", "--secure-agg", "k:4", "--drop", "0.25", "--json"}
	if err := runSim(ctx, args, &out, io.Discard); err != nil {
		t.Fatalf("sim %s: %v", strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var sum simSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary line %q: %v", lines[len(lines)-1], err)
	}
	sa := sum.SecureAgg
	if sa == nil || sa.Graph != "k:4" || sa.Threshold < 0.66 || sa.Threshold > 0.67 {
		t.Fatalf("summary %s; want secure_agg with graph k:4 and threshold 2/3", lines[len(lines)-1])
	}
	const params = 784*32 + 32 + 32*10 + 10
	if sa.Dropped == 0 || sa.ClientMS <= 0 || sa.BytesUp < 4*params || sa.BytesDown <= 0 {
		t.Errorf("secure_agg %+v; want members dropped (--drop 0.25 over 3 rounds of 12), and a member's time and bytes (a masked input alone is %d bytes)", *sa, 4*params)
	}
	aborted, dropped := 0, 0
	for _, l := range lines[:len(lines)-1] {
		var r simRound
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("round line %q: %v", l, err)
		}
		switch {
		case strings.Contains(r.Failed, "secure aggregation aborted"):
			aborted++
		case r.Secure == nil:
			t.Errorf("round line %s carries no secure view", l)
		default:
			dropped += r.Secure.Dropped
		}
	}
	// Aborted rounds fail and the run goes on: its 3 models are all made.
	if aborted != sa.Aborted || dropped > sa.Dropped || sum.Rounds != 3 || len(lines)-1 != 3+aborted {
		t.Errorf("round lines: %d aborted, %d dropped; summary %+v over %d rounds", aborted, dropped, *sa, sum.Rounds)
	}
}
