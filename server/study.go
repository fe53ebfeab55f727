package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/shared/nn"
)

// runStudy runs a grid of simulations and prints a Markdown table: the
// command behind each table in README.md.
//
//	server study codecs   update bytes and accuracy per codec pipeline (a grid
//	                      entry PIPELINE@STRATEGY also sets the strategy)
//	server study robust   final accuracy per attack and strategy, and detection rates
//	server study dp       epsilon and accuracy per DP noise multiplier
//	server study hetero   sync rounds against FedBuff on a heterogeneous
//	                      population, on virtual device time
//	server study secagg   secure aggregation's cost per round size and graph (secagg_study.go)
func runStudy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("study: say which: codecs, robust, dp, hetero or secagg")
	}
	which, args := args[0], args[1:]
	fs := flag.NewFlagSet("study "+which, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f simFlags
	f.register(fs)
	list := fs.String("grid", "", "comma-separated values to compare (default depends on the study; codecs: PIPELINE or PIPELINE@STRATEGY)")
	strategies := fs.String("strategies", "fedavg,trimmed-mean:0.3,median,multi-krum", "robust: strategies to compare (\"none\": only the detection runs)")
	withDetect := fs.Bool("detect-runs", true, "robust: also run fedavg with anomaly detection and report its detection rates")
	graphs := fs.String("graphs", "complete,k:8", "secagg: graphs to compare")
	switch which {
	case "codecs", "dp":
		fs.Lookup("rounds").DefValue, f.cfg.Rounds = "100", 100
	case "robust":
		fs.Lookup("rounds").DefValue, f.cfg.Rounds = "60", 60
		f.attackers = 0.2
	case "hetero":
		fs.Lookup("rounds").DefValue, f.cfg.Rounds = "100", 100
		fs.Lookup("clock").DefValue, f.clock = "virtual", "virtual"
		fs.Lookup("profiles").DefValue, f.profiles = heteroPopulation, heteroPopulation
		fs.Lookup("drop").DefValue, f.opt.DropProb = "0.1", 0.1
	case "secagg":
		fs.Lookup("rounds").DefValue, f.cfg.Rounds = "3", 3
	default:
		return fmt.Errorf("study: unknown study %q (codecs, robust, dp, hetero or secagg)", which)
	}
	asJSON := fs.Bool("json", false, "hetero, secagg: print one JSON line per row instead of the table")
	noniid := fs.String("noniid", "dirichlet:0.3", "hetero: the non-IID partition of the second column")
	noniidTarget := fs.Float64("noniid-target", 0.90, "hetero: the target accuracy of the non-IID column")
	if err := fs.Parse(args); err != nil {
		return err
	}
	progress := func(label string) func(simRound) {
		return func(l simRound) {
			if l.Round%10 == 0 {
				fmt.Fprintf(stderr, "  %s: round %d, test accuracy %.4f\n", label, l.Round, l.TestAccuracy)
			}
		}
	}
	switch which {
	case "secagg":
		return studySecAgg(ctx, &f, split(*list, "10,100,1000"), split(*graphs, ""), *asJSON, stdout, stderr)
	case "codecs":
		return studyCodecs(ctx, &f, split(*list, defaultCodecGrid), stdout, stderr, progress)
	case "robust":
		strats := split(*strategies, "")
		if *strategies == "none" {
			strats = nil
		}
		return studyRobust(ctx, &f, split(*list, "sign-flip,gaussian,scale:10"), strats, *withDetect, stdout, stderr, progress)
	case "hetero":
		return studyHetero(ctx, &f, *noniid, *noniidTarget, *asJSON, stdout, stderr, progress)
	default:
		return studyDP(ctx, &f, split(*list, "0,0.01,0.1,1"), stdout, stderr, progress)
	}
}

// defaultCodecGrid is the codec study of README.md: the top-k pipeline runs
// twice, with plain FedAvg and with a server learning rate of 2.
const defaultCodecGrid = "float32+zstd,float16,float16+shuffle+zstd,int8+zstd,delta+topk:0.01+int8+zstd,delta+topk:0.01+int8+zstd@fedavg:2"

func split(s, def string) []string {
	if s == "" {
		s = def
	}
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func studyCodecs(ctx context.Context, f *simFlags, codecs []string, stdout, stderr io.Writer, progress func(string) func(simRound)) error {
	type row struct {
		codec       string
		strategy    string
		perRound    float64
		vsRaw       float64 // raw float32 bytes of the accepted updates over the bytes sent
		acc         float64
		roundsToTgt *int
	}
	m, err := coord.NewModel(coord.Config{Model: f.cfg.Model, Dataset: f.cfg.Dataset})
	if err != nil {
		return err
	}
	raw := 4 * float64(m.NumParams()) // a raw float32 update
	var rows []row
	for _, entry := range codecs {
		g := *f
		codec, strategy, ok := strings.Cut(entry, "@")
		g.cfg.Codec = codec
		if ok {
			g.cfg.Strategy = strategy
		}
		res, err := simulate(ctx, &g, stderr, progress(entry))
		if err != nil {
			return fmt.Errorf("codec %s: %w", entry, err)
		}
		updates := 0
		for _, l := range res.Lines {
			updates += l.Accepted
		}
		rows = append(rows, row{codec, g.cfg.Strategy, float64(res.BytesUp) / float64(max(1, res.Rounds)), raw * float64(updates) / float64(res.BytesUp),
			res.FinalAccuracy, res.RoundsToTarget})
	}
	fmt.Fprintf(stdout, "| codec | strategy | upload bytes per round | fewer bytes than raw float32 | accuracy after %d rounds | vs the first row | rounds to %g | vs the first row |\n",
		f.cfg.Rounds, f.target)
	fmt.Fprintln(stdout, "|---|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ratio := "-"
		if r.roundsToTgt != nil && rows[0].roundsToTgt != nil {
			ratio = fmt.Sprintf("%.2fx", float64(*r.roundsToTgt)/float64(*rows[0].roundsToTgt))
		}
		fmt.Fprintf(stdout, "| `%s` | `%s` | %.0f | %.2fx | %.4f | %+.2f points | %s | %s |\n", r.codec, r.strategy, r.perRound,
			r.vsRaw, r.acc, 100*(r.acc-rows[0].acc), roundsText(r.roundsToTgt), ratio)
	}
	return nil
}

func studyRobust(ctx context.Context, f *simFlags, attacks, strategies []string, withDetect bool, stdout, stderr io.Writer, progress func(string) func(simRound)) error {
	if withDetect {
		strategies = append(strategies, "fedavg+detect")
	}
	acc := map[[2]string]float64{}
	type detection struct {
		flaggedAttacker, attacker, flaggedHonest, honest int
		acc                                              float64
	}
	det := map[string]detection{}
	for _, attack := range attacks {
		for _, strategy := range strategies {
			g := *f
			g.attack, g.cfg.Strategy = attack, strategy
			if strategy == "fedavg+detect" {
				g.cfg.Strategy, g.cfg.Detect = "fedavg", new(true)
			}
			label := attack + " / " + strategy
			res, err := simulate(ctx, &g, stderr, progress(label))
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			acc[[2]string{strategy, attack}] = res.FinalAccuracy
			if !g.cfg.Detecting() {
				continue
			}
			var d detection
			d.acc = res.FinalAccuracy
			for _, u := range res.Updates {
				if !u.Accepted {
					continue
				}
				if res.AttackerIDs[u.ClientID] {
					d.attacker++
					if u.Excluded {
						d.flaggedAttacker++
					}
				} else {
					d.honest++
					if u.Excluded {
						d.flaggedHonest++
					}
				}
			}
			det[attack] = d
		}
	}
	fmt.Fprintf(stdout, "Final test accuracy after %d rounds, %g of the %d clients attacking:\n\n| strategy |", f.cfg.Rounds, f.attackers, f.cfg.Clients)
	for _, a := range attacks {
		fmt.Fprintf(stdout, " %s |", a)
	}
	fmt.Fprint(stdout, "\n|---|")
	for range attacks {
		fmt.Fprint(stdout, "---:|")
	}
	fmt.Fprintln(stdout)
	for _, s := range strategies {
		fmt.Fprintf(stdout, "| `%s` |", s)
		for _, a := range attacks {
			fmt.Fprintf(stdout, " %.4f |", acc[[2]string{s, a}])
		}
		fmt.Fprintln(stdout)
	}
	if !withDetect {
		return nil
	}
	fmt.Fprint(stdout, "\nDetection (fedavg with detect): updates excluded as anomalies\n\n| attack | attacker updates flagged | honest updates flagged |\n|---|---:|---:|\n")
	for _, a := range attacks {
		d := det[a]
		fmt.Fprintf(stdout, "| %s | %d/%d (%.1f%%) | %d/%d (%.1f%%) |\n", a, d.flaggedAttacker, d.attacker,
			pct(d.flaggedAttacker, d.attacker), d.flaggedHonest, d.honest, pct(d.flaggedHonest, d.honest))
	}
	return nil
}

func studyDP(ctx context.Context, f *simFlags, noises []string, stdout, stderr io.Writer, progress func(string) func(simRound)) error {
	if f.dp.ClipNorm == 0 {
		f.dp.ClipNorm = 1
	}
	// A run whose noise wrecks the model can end early (its clients'
	// training diverges, they decline, rounds fail): say how many rounds
	// it aggregated, and the epsilon they spent.
	fmt.Fprintf(stdout, "| noise multiplier z | clip norm | rounds aggregated (of %d) | epsilon at delta=%g | final accuracy |\n|---:|---:|---:|---:|---:|\n",
		f.cfg.Rounds, f.dp.Delta)
	for _, z := range noises {
		v, err := strconv.ParseFloat(z, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("dp: bad noise multiplier %q", z)
		}
		g := *f
		g.dp.NoiseMultiplier = v
		res, err := simulate(ctx, &g, stderr, progress("z="+z))
		if err != nil {
			return fmt.Errorf("z=%s: %w", z, err)
		}
		eps := "∞ (no noise)"
		if res.Epsilon != nil && !math.IsInf(*res.Epsilon, 0) {
			eps = fmt.Sprintf("%.4g", *res.Epsilon)
		}
		clip := fmt.Sprintf("%g", g.dp.ClipNorm)
		if g.dp.TargetQuantile > 0 {
			clip += fmt.Sprintf(" (adaptive, quantile %g)", g.dp.TargetQuantile)
		}
		fmt.Fprintf(stdout, "| %s | %s | %d | %s | %.4f |\n", z, clip, res.Rounds, eps, res.FinalAccuracy)
	}
	return nil
}

func roundsText(r *int) string {
	if r == nil {
		return "not reached"
	}
	return strconv.Itoa(*r)
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// heteroPopulation is study hetero's population: 30% phone-low devices (5x
// slower than a laptop, on a mobile network) among laptops.
const heteroPopulation = "phone-low:0.3,laptop:0.7"

// heteroRun is one simulation of study hetero.
type heteroRun struct {
	VirtualSecondsToTarget *float64           `json:"virtual_seconds_to_target"`
	RoundsToTarget         *int               `json:"rounds_to_target"`
	Target                 float64            `json:"target"`
	FinalAccuracy          float64            `json:"final_accuracy"`
	WorstLabelAccuracy     float64            `json:"worst_label_accuracy"`
	ShareByProfile         map[string]float64 `json:"share_by_profile"`
	Bytes                  int64              `json:"bytes"`
	VirtualSeconds         float64            `json:"virtual_seconds"`
}

// heteroRow is one line of study hetero --json: the IID run's figures at
// the top level, the non-IID run's under "noniid".
type heteroRow struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
	heteroRun
	NonIID heteroRun `json:"noniid"`
}

// studyHetero compares synchronous rounds with FedBuff on a population of
// slow and fast, flaky devices, in virtual device time: time to a target
// on IID data, and on non-IID data whose slow devices hold other labels
// than the fast ones (labels 0-2 go to the slowest devices first), where
// a policy that leaves slow devices out loses those labels.
func studyHetero(ctx context.Context, f *simFlags, noniid string, noniidTarget float64, asJSON bool, stdout, stderr io.Writer, progress func(string) func(simRound)) error {
	rows := []struct {
		name string
		set  func(*simFlags)
	}{
		{"sync FedAvg", func(g *simFlags) {}},
		{"sync FedAvg, over-selection 1.3", func(g *simFlags) { g.cfg.OverSelect = 1.3 }},
		{"FedBuff K=10", func(g *simFlags) { g.cfg.Mode, g.cfg.Buffer = coord.ModeAsync, 10 }},
		{"FedBuff K=10, utility selection", func(g *simFlags) {
			g.cfg.Mode, g.cfg.Buffer, g.cfg.Selection = coord.ModeAsync, 10, coord.SelectUtility
		}},
		// Less staleness, a weighted mean (see README, "The lab").
		{"FedBuff K=10, concurrency 10, staleness_norm weights", func(g *simFlags) {
			g.cfg.Mode, g.cfg.Buffer, g.cfg.Concurrency, g.cfg.StalenessNorm = coord.ModeAsync, 10, 10, coord.StaleNormWeights
		}},
	}
	one := func(g *simFlags, label string) (heteroRun, error) {
		res, err := simulate(ctx, g, stderr, progress(label))
		if err != nil {
			return heteroRun{}, fmt.Errorf("%s: %w", label, err)
		}
		h := heteroRun{VirtualSecondsToTarget: res.VirtualSecondsToTarget, RoundsToTarget: res.RoundsToTarget, Target: g.target,
			FinalAccuracy: res.FinalAccuracy, WorstLabelAccuracy: res.WorstLabelAccuracy, ShareByProfile: map[string]float64{},
			Bytes: res.BytesUp + res.BytesDown}
		if res.VirtualSeconds != nil {
			h.VirtualSeconds = *res.VirtualSeconds
		}
		accepted := 0
		for _, u := range res.Updates {
			if u.Accepted {
				accepted++
				h.ShareByProfile[u.Profile]++
			}
		}
		for p := range h.ShareByProfile {
			h.ShareByProfile[p] = math.Round(h.ShareByProfile[p]/float64(max(accepted, 1))*1000) / 1000
		}
		return h, nil
	}
	var out []heteroRow
	for _, r := range rows {
		g := *f
		r.set(&g)
		iid, err := one(&g, r.name+", iid")
		if err != nil {
			return err
		}
		n := g
		n.cfg.Partition, n.target, n.slowLabels = noniid, noniidTarget, "0,1,2"
		non, err := one(&n, r.name+", "+noniid)
		if err != nil {
			return err
		}
		row := heteroRow{Name: r.name, Mode: g.cfg.Mode, heteroRun: iid, NonIID: non}
		if asJSON {
			printLine(stdout, true, row, "")
		}
		out = append(out, row)
	}
	if asJSON {
		return nil
	}
	secs := func(v *float64) string {
		if v == nil {
			return "not reached"
		}
		return fmt.Sprintf("%.0f s", *v)
	}
	ratio := func(v, base *float64) string {
		if v == nil || base == nil {
			return ""
		}
		return fmt.Sprintf(" (%.2fx)", *v / *base)
	}
	batch, lr := f.cfg.Batch, f.cfg.LR
	if d := nn.DefaultsFor(f.cfg.Model); batch == 0 || lr == 0 { // 0: the model's defaults, as the runs took them
		batch, lr = cmp.Or(batch, d.Batch), cmp.Or(lr, d.LR)
	}
	fmt.Fprintf(stdout, "Population: %d clients, %s, %.0f%% of tasks dropped mid-training; %d rounds (async: server steps of %d updates); %s, E=%d, B=%d, lr %g; virtual device time.\n\n",
		f.cfg.Clients, f.profiles, 100*f.opt.DropProb, f.cfg.Rounds, 10, f.cfg.Model, f.cfg.LocalEpochs, batch, lr)
	fmt.Fprintf(stdout, "| policy | time to %g, IID | final accuracy, IID | time to %g, %s | final accuracy, %s | worst label, %s | phone-low share of updates, %s | bytes, IID |\n",
		f.target, noniidTarget, noniid, noniid, noniid, noniid)
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range out {
		fmt.Fprintf(stdout, "| %s | %s%s | %.4f | %s%s | %.4f | %.4f | %.0f%% | %.0f MB |\n", r.Name,
			secs(r.VirtualSecondsToTarget), ratio(r.VirtualSecondsToTarget, out[0].VirtualSecondsToTarget), r.FinalAccuracy,
			secs(r.NonIID.VirtualSecondsToTarget), ratio(r.NonIID.VirtualSecondsToTarget, out[0].NonIID.VirtualSecondsToTarget),
			r.NonIID.FinalAccuracy, r.NonIID.WorstLabelAccuracy, 100*r.NonIID.ShareByProfile["phone-low"], float64(r.Bytes)/1e6)
	}
	return nil
}
