package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// secaggLine is one line of `study secagg --json`: what a secure round
// costs with n clients on a graph, beside a plain round of the same run.
type secaggLine struct {
	N     int    `json:"n"`
	Graph string `json:"graph"`
	// ClientMS is a client's mean secure aggregation computation per round
	// (keys, sharing, masking, unmasking; training excluded), natively.
	ClientMS float64 `json:"client_ms"`
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
	Rounds            int     `json:"rounds"`
	Aborted           int     `json:"aborted"`
}

// studySecAgg runs, for each round size n, a plain simulation and a secure
// one per graph, every client selected every round (fraction 1, n slices),
// and reports the costs.
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
		fmt.Fprintf(stderr, "study secagg: n=%d, plain\n", n)
		plain, err := simulate(ctx, &g, stderr, quiet)
		if err != nil {
			return fmt.Errorf("n=%d plain: %w", n, err)
		}
		pUp, pDown := perClient(plain)
		for _, graph := range graphs {
			h := g
			h.secure.Graph = graph
			fmt.Fprintf(stderr, "study secagg: n=%d, %s\n", n, graph)
			res, err := simulate(ctx, &h, stderr, quiet)
			if err != nil {
				return fmt.Errorf("n=%d %s: %w", n, graph, err)
			}
			sum := res.SecureAgg
			l := secaggLine{N: n, Graph: graph, ClientMS: round1(sum.ClientMS), BytesUp: round1(sum.BytesUp), BytesDown: round1(sum.BytesDown),
				PlainBytesUp: round1(pUp), PlainBytesDown: round1(pDown), RoundSeconds: round3(meanSeconds(res)),
				PlainRoundSeconds: round3(meanSeconds(plain)), Rounds: len(res.Lines), Aborted: sum.Aborted}
			if l.PlainRoundSeconds > 0 {
				l.Ratio = round3(l.RoundSeconds / l.PlainRoundSeconds)
			}
			printLine(stdout, asJSON, l, fmt.Sprintf("| %d | %s | %.1f | %.0f | %.0f | %.2f | %.2f | %.2fx |", l.N, l.Graph,
				l.ClientMS, l.BytesUp, l.BytesDown, l.RoundSeconds, l.PlainRoundSeconds, l.Ratio))
		}
	}
	return nil
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
