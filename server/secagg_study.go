package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
)

// secaggLine is one line of `study secagg --json`: what a secure round
// costs with n clients on a graph, beside a plain round of the same run.
type secaggLine struct {
	N     int    `json:"n"`
	Graph string `json:"graph"`
	// ClientMS is the CPU a secure round costs per client beyond a plain
	// one, natively: the process's CPU time (user + system) of the secure
	// run minus that of the plain run, over clients × rounds. It holds the
	// clients' secure aggregation work (keys, signatures, sharing, masking,
	// unmasking) and the server's (relaying, unmasking), free of the
	// waiting that wall time shows when a hundred clients share two cores.
	ClientMS float64 `json:"client_ms"`
	// ClientWallMS is the wall time of a client's secure aggregation work
	// per round as the clients measured it (waiting for a core included).
	ClientWallMS float64 `json:"client_wall_ms"`
	// BytesUp and BytesDown are a client's mean traffic per secure round:
	// keys, envelopes, masked input and shares up; model, roster, inbox and
	// unmask request down. PlainBytesUp and PlainBytesDown are a plain
	// round's (update up, model down).
	BytesUp        float64 `json:"bytes_up"`
	BytesDown      float64 `json:"bytes_down"`
	PlainBytesUp   float64 `json:"plain_bytes_up"`
	PlainBytesDown float64 `json:"plain_bytes_down"`
	// RoundSeconds and PlainRoundSeconds are the mean wall time of a round
	// (training, evaluation and, for secure rounds, the four phases and
	// the unmasking), after the first round of each run.
	RoundSeconds      float64 `json:"round_seconds"`
	PlainRoundSeconds float64 `json:"plain_round_seconds"`
	Ratio             float64 `json:"ratio"` // RoundSeconds / PlainRoundSeconds
	// RoundCPU and PlainRoundCPU are the process's CPU seconds per round
	// (all rounds), and CPURatio their ratio: on a shared machine, whose
	// load drifts between runs, the steadier measure of how much longer a
	// secure round keeps the cores busy.
	RoundCPU      float64 `json:"round_cpu_seconds"`
	PlainRoundCPU float64 `json:"plain_round_cpu_seconds"`
	CPURatio      float64 `json:"cpu_ratio"`
	Rounds        int     `json:"rounds"`
	Aborted       int     `json:"aborted"`
}

// studySecAgg runs, for each round size n, a secure simulation per graph
// between two plain ones, every client selected every round (fraction 1,
// n slices), and reports the costs.
func studySecAgg(ctx context.Context, f *simFlags, sizes, graphs []string, asJSON bool, stdout, stderr io.Writer) error {
	if !asJSON {
		fmt.Fprintln(stdout, "| n | graph | client ms | bytes up | bytes down | round s | plain round s | ratio |")
		fmt.Fprintln(stdout, "|---:|---|---:|---:|---:|---:|---:|---:|")
	}
	quiet := func(simRound) {}
	for _, s := range sizes {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			return fmt.Errorf("secagg: bad round size %q", s)
		}
		g := *f
		g.cfg.Clients, g.cfg.Fraction, g.perRound, g.join = n, 1, 0, 0
		g.secure.Graph = ""
		if g.secure.PhaseTimeout == 0 {
			// A thousand members' crypto on two cores outlasts the default
			// phase timeout; a virtual member that leaves closes its
			// connection, so the phases never wait on it for nothing.
			g.secure.PhaseTimeout = coord.Duration(time.Hour)
		}
		// Plain runs before and after the secure ones, averaged: the
		// machine's load drifts.
		var plain []*simResult
		var plainCPU float64
		runPlain := func() error {
			fmt.Fprintf(stderr, "study secagg: n=%d, plain\n", n)
			start := cpuSeconds()
			res, err := simulate(ctx, &g, stderr, quiet)
			if err != nil {
				return fmt.Errorf("n=%d plain: %w", n, err)
			}
			plain = append(plain, res)
			plainCPU += cpuSeconds() - start
			return nil
		}
		if err := runPlain(); err != nil {
			return err
		}
		var lines []secaggLine
		var cpu []float64
		for _, graph := range graphs {
			h := g
			h.secure.Graph = graph
			fmt.Fprintf(stderr, "study secagg: n=%d, %s\n", n, graph)
			start := cpuSeconds()
			res, err := simulate(ctx, &h, stderr, quiet)
			if err != nil {
				return fmt.Errorf("n=%d %s: %w", n, graph, err)
			}
			cpu = append(cpu, cpuSeconds()-start)
			sum := res.SecureAgg
			lines = append(lines, secaggLine{N: n, Graph: graph, ClientWallMS: round1(sum.ClientMS), BytesUp: round1(sum.BytesUp),
				BytesDown: round1(sum.BytesDown), RoundSeconds: round3(meanSeconds(res)), Rounds: len(res.Lines), Aborted: sum.Aborted})
		}
		if err := runPlain(); err != nil {
			return err
		}
		plainCPU /= 2
		pUp, pDown := perClient(plain[0])
		plainSecs := (meanSeconds(plain[0]) + meanSeconds(plain[1])) / 2
		for i := range lines {
			l := &lines[i]
			l.PlainBytesUp, l.PlainBytesDown, l.PlainRoundSeconds = round1(pUp), round1(pDown), round3(plainSecs)
			rounds := float64(max(1, l.Rounds))
			l.RoundCPU, l.PlainRoundCPU = round3(cpu[i]/rounds), round3(plainCPU/rounds)
			if plainCPU > 0 {
				l.CPURatio = round3(cpu[i] / plainCPU)
			}
			l.ClientMS = round1(1000 * (cpu[i] - plainCPU) / float64(n*max(1, l.Rounds)))
			if l.PlainRoundSeconds > 0 {
				l.Ratio = round3(l.RoundSeconds / l.PlainRoundSeconds)
			}
			printLine(stdout, asJSON, l, fmt.Sprintf("| %d | %s | %.1f | %.0f | %.0f | %.2f | %.2f | %.2fx |", l.N, l.Graph,
				l.ClientMS, l.BytesUp, l.BytesDown, l.RoundSeconds, l.PlainRoundSeconds, l.Ratio))
		}
	}
	return nil
}

// cpuSeconds is the process's CPU time so far, user and system.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// meanSeconds is the mean wall time of a run's rounds after its first
// (which also warms up trainers and caches).
func meanSeconds(res *simResult) float64 {
	lines := res.Lines
	if len(lines) > 1 {
		lines = lines[1:]
	}
	var s float64
	for _, l := range lines {
		s += l.Seconds
	}
	return s / float64(max(1, len(lines)))
}

// perClient is a plain run's mean update bytes up and model bytes down per
// client and round.
func perClient(res *simResult) (up, down float64) {
	var n int
	for _, l := range res.Lines {
		up += float64(l.BytesUp)
		down += float64(l.BytesDown)
		n += l.Selected
	}
	return up / float64(max(1, n)), down / float64(max(1, n))
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
