package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/sim"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/server/internal/vclock"
	"github.com/qflare/qflare/shared/adversary"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/profile"
)

// simRound is one line of `sim --json`: Round is the model version an
// aggregated round produced (the number of rounds that produced a model so
// far), or the failed round's number.
type simRound struct {
	Round   int `json:"round"`
	version int64
	// engine is the engine's round number: Round is the model version for
	// an aggregated round, so after failed rounds the two part ways.
	engine       int
	TestAccuracy float64  `json:"test_accuracy"`
	TestLoss     float64  `json:"test_loss"`
	BytesUp      int64    `json:"bytes_up"`
	BytesDown    int64    `json:"bytes_down"`
	Seconds      float64  `json:"seconds"`
	Selected     int      `json:"selected"`
	Accepted     int      `json:"accepted"`
	Epsilon      *float64 `json:"epsilon,omitempty"`
	Failed       string   `json:"failed,omitempty"`
	// VirtualSeconds is the virtual time at the round's end (--clock
	// virtual); MeanStaleness the step's mean update staleness (async).
	VirtualSeconds *float64  `json:"virtual_seconds,omitempty"`
	MeanStaleness  float64   `json:"mean_staleness,omitempty"`
	LabelAccuracy  []float64 `json:"label_accuracy,omitempty"`
	endedAt        time.Time
	// Secure is a secure round's members, survivors, drops and traffic.
	Secure *coord.SecureView `json:"secure,omitempty"`
}

// simSummary is the last line of `sim --json`.
type simSummary struct {
	RoundsToTarget *int     `json:"rounds_to_target"`
	Target         float64  `json:"target"`
	Rounds         int      `json:"rounds"`
	FinalAccuracy  float64  `json:"final_accuracy"`
	BytesUp        int64    `json:"bytes_up"`
	BytesDown      int64    `json:"bytes_down"`
	Seconds        float64  `json:"seconds"`
	Epsilon        *float64 `json:"epsilon,omitempty"`
	Run            string   `json:"run"`
	Mode           string   `json:"mode"`
	// Status is how the run ended (finished, stopped or failed), and Error
	// why it failed: a run whose rounds keep failing (every selected client
	// declines) ends before its last round.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// VirtualSeconds is the virtual time the run took, and
	// VirtualSecondsToTarget when the target was first reached (--clock
	// virtual).
	VirtualSeconds         *float64 `json:"virtual_seconds,omitempty"`
	VirtualSecondsToTarget *float64 `json:"virtual_seconds_to_target,omitempty"`
	// WorstLabelAccuracy is the final model's lowest per-label test
	// accuracy.
	WorstLabelAccuracy float64 `json:"worst_label_accuracy"`
	// SecureAgg summarises secure aggregation (sim --secure-agg).
	SecureAgg *secureSummary `json:"secure_agg,omitempty"`
}

// secureSummary is sim's summary of its secure rounds.
type secureSummary struct {
	Threshold float64 `json:"threshold"`
	Graph     string  `json:"graph"`
	// Dropped counts the members that left a round after its roster was
	// fixed, over all rounds; Aborted the rounds that fell below the
	// threshold (they failed, and the run went on).
	Dropped int `json:"dropped"`
	Aborted int `json:"aborted"`
	// ClientMS is a member's mean secure aggregation computation per round
	// (keys, sharing, masking, unmasking; not training), and BytesUp and
	// BytesDown its mean traffic per round: everything it sent (keys,
	// envelopes, masked input, shares) and received (model, roster, inbox,
	// unmask request).
	ClientMS  float64 `json:"client_ms"`
	BytesUp   float64 `json:"bytes_up"`
	BytesDown float64 `json:"bytes_down"`
}

// simFlags are the simulation flags sim and study share.
type simFlags struct {
	cfg          coord.Config
	perRound     int
	join         int
	target       float64
	stopAtTarget bool
	db, dataDir  string
	opt          sim.Options
	attack       string
	attackers    float64
	dp           coord.DPSettings
	verbose      bool
	memEvery     int
	clock        string
	deadline     time.Duration
	profiles     string
	slowLabels   string
	secure       coord.SecureAggSettings // Graph "" = off
}

func (f *simFlags) register(fs *flag.FlagSet) {
	c := &f.cfg
	fs.StringVar(&c.Model, "model", "mnist-2nn", "model name")
	fs.StringVar(&c.Dataset, "dataset", "mnist", "dataset: mnist or cifar10")
	fs.IntVar(&c.Clients, "clients", 100, "number of virtual clients (data slices)")
	fs.Float64Var(&c.Fraction, "fraction", 0.1, "fraction C of clients selected each round")
	fs.IntVar(&f.perRound, "per-round", 0, "clients selected each round (overrides --fraction)")
	fs.IntVar(&f.join, "join", 0, "virtual clients that join (default: one per slice, --clients); the others' slices stay unused")
	fs.IntVar(&c.LocalEpochs, "epochs", 1, "local epochs E")
	fs.IntVar(&c.Batch, "batch", 0, "local batch size B (0 = the model's default: "+defaultsHelp("batch")+")")
	fs.Float64Var(&c.LR, "lr", 0, "client learning rate (0 = the model's default: "+defaultsHelp("lr")+")")
	fs.Float64Var(&c.Momentum, "momentum", 0, "client SGD momentum")
	fs.Float64Var(&c.WeightDecay, "weight-decay", 0, "client SGD weight decay")
	fs.StringVar(&c.Partition, "partition", "iid", "iid, dirichlet:ALPHA or shards:K")
	fs.IntVar(&c.Rounds, "rounds", 100, "rounds to run")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed for the model, partition, selection and clients")
	fs.StringVar(&c.Codec, "codec", "float32+zstd", "update pipeline, e.g. int8+zstd or delta+topk:0.01+int8+zstd")
	fs.StringVar(&c.DownCodec, "down-codec", "float32+zstd", "pipeline of the model sent down")
	fs.StringVar(&c.Strategy, "strategy", "fedavg", "aggregation strategy, e.g. fedavg, fedavg:2 (server learning rate 2), trimmed-mean:0.2, median, multi-krum")
	fs.BoolFunc("detect", "score every update and exclude anomalies", func(v string) error {
		b, err := strconv.ParseBool(v)
		c.Detect = &b
		return err
	})
	fs.Float64Var(&f.dp.NoiseMultiplier, "dp-noise", 0, "DP-FedAvg noise multiplier z (with --dp-clip; 0 = no DP)")
	fs.Float64Var(&f.dp.ClipNorm, "dp-clip", 0, "DP-FedAvg L2 clip norm (initial norm with --dp-quantile)")
	fs.Float64Var(&f.dp.Delta, "dp-delta", 1e-5, "delta epsilon is reported at")
	fs.Float64Var(&f.dp.TargetQuantile, "dp-quantile", 0, "adaptive clipping toward this quantile of update norms (0 = fixed)")
	fs.StringVar(&f.attack, "attack", "none", "attack of the malicious clients: sign-flip, gaussian, scale:K, label-flip")
	fs.Float64Var(&f.attackers, "attackers", 0, "fraction of the clients that attack")
	fs.IntVar(&c.EvalLimit, "eval-limit", 0, "evaluate on the first N test images (0 = all)")
	fs.Float64Var(&f.target, "target", 0.97, "test accuracy whose first round is reported as rounds_to_target")
	fs.BoolVar(&f.stopAtTarget, "stop-at-target", false, "stop once the target is reached")
	fs.StringVar(&f.db, "db", store.MemoryPath, "SQLite database to record the run in (default in memory)")
	fs.StringVar(&f.dataDir, "data-dir", "", "dataset folder (default: MNIST from the GoMNIST module)")
	fs.IntVar(&f.opt.Parallel, "parallel", 0, "clients training at once (default: one per core)")
	fs.Float64Var(&f.opt.DropProb, "drop", 0, "chance per round that a client drops its connection mid-training (with --secure-agg: at one of the four phases, chosen at random)")
	fs.BoolVar(&f.verbose, "v", false, "log the coordinator's events to stderr")
	fs.IntVar(&f.memEvery, "mem-every", 0, "every N rounds, print the process's live Go heap and RSS (a soak check; 0 = never)")
	fs.StringVar(&c.Mode, "mode", "sync", "sync (rounds) or async (FedBuff: a server step every --buffer updates)")
	fs.IntVar(&c.Buffer, "buffer", 0, "async: updates per server step K (default 10)")
	fs.IntVar(&c.Concurrency, "concurrency", 0, "async: clients training at once (default 2×buffer)")
	fs.StringVar(&c.Staleness, "staleness", "", "async: staleness weight: sqrt (1/sqrt(1+τ), default), constant or hinge:A,B")
	fs.StringVar(&c.StalenessNorm, "staleness-norm", "", "async: divide a step's weighted sum by the total of samples times staleness weights (weights) or by the sample total (samples, the default, as in the FedBuff paper)")
	fs.IntVar(&c.MaxStaleness, "max-staleness", 0, "async: refuse updates more steps stale than this (default 32)")
	fs.Float64Var(&c.ServerLR, "server-lr", 0, "server learning rate (default: the strategy's, 1 for fedavg)")
	fs.StringVar(&c.Selection, "selection", "random", "client selection: random, deadline or utility (Oort-style)")
	fs.Float64Var(&c.OverSelect, "over-select", 1, "sync: select this many times the clients a round needs, close at the needed count")
	fs.DurationVar(&f.deadline, "deadline", 0, "round deadline (async: per task); 0 = none")
	fs.StringVar(&f.profiles, "profiles", "", "device profiles of the virtual clients in proportions, e.g. phone-low:0.3,laptop:0.7 (profiles: "+strings.Join(profile.Names(), ", ")+"); --drop, when set, replaces their drop chance")
	fs.StringVar(&f.slowLabels, "slow-labels", "", "with --profiles: give the slowest devices to the clients whose data holds most of these labels, e.g. 0,1,2 (so that a bias against slow devices shows in those labels' accuracy)")
	fs.StringVar(&f.clock, "clock", "real", "real, or virtual: device time is simulated (with --profiles), so a long heterogeneity study runs in minutes")
	fs.StringVar(&f.secure.Graph, "secure-agg", "", "aggregate securely (the server learns only the sum): complete, or k:K for a SecAgg+ K-regular graph")
	fs.Float64Var(&f.secure.Threshold, "secure-threshold", 0, "with --secure-agg: fraction of a member's share holders needed (default 2/3)")
	fs.Float64Var(&f.secure.Clip, "secure-clip", 0, "with --secure-agg: clip of each update coordinate (default 1)")
	fs.Func("secure-phase-timeout", "with --secure-agg: how long the key, share and unmask phases wait (default 30s; up to 1h)", func(v string) error {
		d, err := time.ParseDuration(v)
		f.secure.PhaseTimeout = coord.Duration(d)
		return err
	})
}

// simResult is what a simulation produced, for studies.
type simResult struct {
	simSummary
	Lines []simRound
	// AttackerIDs are the client ids of the attacking clients.
	AttackerIDs map[string]bool
	// secure sums the members' secure aggregation costs (EventSecure) and
	// model downloads.
	secure  secureCosts
	Updates []store.Update // every update of the run, without payloads
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f simFlags
	f.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON line per round and a summary line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sim: unexpected argument %q", fs.Arg(0))
	}
	res, err := simulate(ctx, &f, stderr, func(line simRound) {
		text := fmt.Sprintf("round %d: test accuracy %.4f, loss %.4f, %d/%d updates, %d B up, %d B down, %.1fs",
			line.Round, line.TestAccuracy, line.TestLoss, line.Accepted, line.Selected, line.BytesUp, line.BytesDown, line.Seconds)
		if line.Failed != "" {
			text = fmt.Sprintf("round %d failed: %s; %d/%d updates, %d B down, %.1fs",
				line.Round, line.Failed, line.Accepted, line.Selected, line.BytesDown, line.Seconds)
		}
		printLine(stdout, *asJSON, line, text)
		if f.memEvery > 0 && line.Round%f.memEvery == 0 && line.Failed == "" {
			m := memNow(line.Round)
			printLine(stdout, *asJSON, m, fmt.Sprintf("memory after round %d: live heap %.1f MB, RSS %.1f MB", m.Round, m.HeapMB, m.RSSMB))
		}
	})
	if err != nil {
		return err
	}
	return finishSim(stdout, *asJSON, res.simSummary)
}

// simulate runs one simulated federation and reports each round to onRound.
func simulate(ctx context.Context, f *simFlags, stderr io.Writer, onRound func(simRound)) (*simResult, error) {
	cfg := f.cfg
	cfg.ClientsPerRound = f.perRound
	joining := cfg.Clients
	if f.join != 0 {
		if f.join < 1 || f.join > cfg.Clients {
			return nil, fmt.Errorf("sim: --join %d is not in 1..--clients (%d)", f.join, cfg.Clients)
		}
		joining = f.join
	}
	cfg.StartClients = joining // every virtual client joins before round 1
	cfg.MinClients = 1
	cfg.NoDeadline = true
	cfg.RoundDeadline = coord.Duration(f.deadline)
	var clock *vclock.Clock
	switch f.clock {
	case "real":
	case "virtual":
		clock = vclock.New(time.Now().UTC().Truncate(time.Second))
	default:
		return nil, fmt.Errorf("sim: --clock %q is not real or virtual", f.clock)
	}
	cfg.Name = "sim"
	if f.dp.NoiseMultiplier > 0 || f.dp.ClipNorm > 0 {
		dp := f.dp
		cfg.DP = &dp
	}
	if f.secure.Graph != "" {
		s := f.secure
		cfg.SecureAgg = &s
	}
	attack, err := adversary.Parse(f.attack)
	if err != nil {
		return nil, err
	}
	attackers, err := adversary.Choose(cfg.Clients, f.attackers, cfg.Seed)
	if err != nil {
		return nil, err
	}
	var stOpts []store.Option
	if clock != nil {
		stOpts = append(stOpts, store.WithClock(clock.Now)) // the rows' times are virtual too
	}
	st, err := store.Open(ctx, f.db, stOpts...)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	if f.verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	deps := coord.Deps{Store: st, Log: log,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, f.dataDir) }}
	if clock != nil {
		deps.Clock = clock
	}
	c := coord.New(deps)
	defer c.Close()
	run, err := c.CreateRun(ctx, cfg)
	if err != nil {
		return nil, err
	}
	sub := run.Subscribe(4096)
	defer sub.Close()
	cfg = run.Config()
	fmt.Fprintf(stderr, "sim: run %s, %s on %s, %d of %d clients (%s), C=%g, E=%d, B=%d, lr=%g, %s, codec %s, %d rounds",
		run.ID(), cfg.Model, cfg.Dataset, joining, cfg.Clients, cfg.Partition, cfg.Fraction, cfg.LocalEpochs, cfg.Batch, cfg.LR,
		cfg.Strategy, cfg.Codec, cfg.Rounds)
	if !attack.IsNone() && f.attackers > 0 {
		fmt.Fprintf(stderr, ", %g of clients attack with %s", f.attackers, attack)
	}
	fmt.Fprintln(stderr)
	res := &simResult{AttackerIDs: map[string]bool{}}
	var idMu sync.Mutex
	opt := f.opt
	opt.Seed, opt.Log = cfg.Seed, log
	opt.Configure = func(i int, po *participant.Options) {
		po.Events = res.secure.observe
		if !attackers[i] {
			return
		}
		po.Attack = attack
		po.Events = func(e participant.Event) {
			res.secure.observe(e)
			if e.Type == participant.EventWelcome && e.ClientID != "" {
				idMu.Lock()
				res.AttackerIDs[e.ClientID] = true
				idMu.Unlock()
			}
		}
	}
	if f.profiles != "" {
		mix, err := profile.ParseMix(f.profiles)
		if err != nil {
			return nil, fmt.Errorf("sim: --profiles: %w", err)
		}
		opt.Profiles = mix.Assign(joining, cfg.Seed)
		if f.slowLabels != "" {
			if err := slowestTo(opt.Profiles, run.SliceLabels(), f.slowLabels); err != nil {
				return nil, err
			}
		}
		if f.opt.DropProb > 0 {
			for i := range opt.Profiles {
				opt.Profiles[i].DropProb = f.opt.DropProb
			}
		}
		fmt.Fprintf(stderr, "sim: device profiles %s\n", mix)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled error
	if clock != nil {
		opt.Clock = clock
		clockDone := make(chan struct{})
		go func() {
			defer close(clockDone)
			if err := clock.Run(sctx, 5*time.Second); sctx.Err() == nil {
				stalled = err
				cancel()
			}
		}()
		defer func() { cancel(); <-clockDone }()
	}
	realStart, start := time.Now(), time.Now()
	if clock != nil {
		start = clock.Now()
	}
	wait := sim.Join(sctx, c, run, joining, opt)
	defer wait()
	stopping := false

	sum := &res.simSummary
	sum.Target, sum.Run, sum.Mode = f.target, run.ID(), cfg.Mode
	last := 0 // the last engine round reported
	report := func(line simRound) {
		if line.engine <= last {
			return
		}
		last = line.engine
		if clock != nil && !line.endedAt.IsZero() {
			v := math.Round(line.endedAt.Sub(start).Seconds()*1000) / 1000
			line.VirtualSeconds = &v
			// The run took until its latest end: an async step's line
			// may be reported after a later-numbered one ended.
			if sum.VirtualSeconds == nil || v > *sum.VirtualSeconds {
				sum.VirtualSeconds = &v
			}
		}
		if line.Failed == "" {
			sum.Rounds, sum.FinalAccuracy = int(line.version), line.TestAccuracy
			sum.WorstLabelAccuracy = worst(line.LabelAccuracy)
			if sum.RoundsToTarget == nil && line.TestAccuracy >= f.target {
				r := int(line.version)
				sum.RoundsToTarget = &r
				sum.VirtualSecondsToTarget = line.VirtualSeconds
			}
			if line.Epsilon != nil {
				sum.Epsilon = line.Epsilon
			}
		}
		sum.BytesUp += line.BytesUp
		sum.BytesDown += line.BytesDown
		res.Lines = append(res.Lines, line)
		onRound(line)
		if f.stopAtTarget && sum.RoundsToTarget != nil && !stopping {
			stopping = true
			go run.Stop(context.WithoutCancel(ctx), "target reached") // never from inside the event loop
		}
	}
	for {
		select {
		case <-sctx.Done():
			if stalled != nil {
				return nil, stalled
			}
			return nil, sctx.Err()
		case ev, ok := <-sub.C:
			if ev.Missed > 0 || !ok {
				// Events were lost (or the run ended): the store has every
				// closed round.
				if err := resync(ctx, st, run.ID(), last, report); err != nil {
					return nil, err
				}
			}
			if !ok {
				sum.Seconds = time.Since(realStart).Seconds()
				if c := cfg.SecureAgg; c != nil {
					sum.SecureAgg = res.secure.summary(c, res.Lines)
				}
				if res.Updates, err = st.Updates(ctx, run.ID(), -1); err != nil {
					return nil, err
				}
				sr, err := st.Run(ctx, run.ID())
				if err != nil {
					return nil, err
				}
				sum.Status, sum.Error = sr.Status, sr.Error
				return res, nil
			}
			if ev.Type == coord.EvRoundEnded {
				line := roundLine(ev.Round)
				line.endedAt = ev.Time
				report(line)
			}
		}
	}
}

// roundLine is a round_ended event as a line of sim --json.
func roundLine(rv *coord.RoundView) simRound {
	line := simRound{Round: rv.Round, engine: rv.Round, version: rv.ModelVersion, TestAccuracy: rv.TestAccuracy, TestLoss: rv.TestLoss,
		BytesUp: rv.BytesUp, BytesDown: rv.BytesDown, Seconds: rv.Seconds, Selected: len(rv.Selected),
		Accepted: rv.Accepted, Epsilon: rv.Epsilon, Failed: rv.Failed, MeanStaleness: rv.MeanStaleness,
		LabelAccuracy: rv.LabelAccuracy, Secure: rv.Secure}
	if rv.Failed == "" {
		line.Round = int(rv.ModelVersion)
	}
	return line
}

// resync reports the closed rounds after round last from the store, in
// order, for a subscriber that lost events.
func resync(ctx context.Context, st *store.Store, run string, last int, report func(simRound)) error {
	rounds, err := st.Rounds(ctx, run)
	if err != nil {
		return err
	}
	for _, sr := range rounds {
		if sr.Status == store.RoundOpen {
			continue
		}
		line := simRound{Round: sr.Round, engine: sr.Round, version: int64(sr.ModelVersion), TestAccuracy: sr.TestAccuracy, TestLoss: sr.TestLoss,
			BytesUp: sr.BytesUp, BytesDown: sr.BytesDown, Seconds: sr.FinishedAt.Sub(sr.StartedAt).Seconds(),
			Selected: sr.NSelected, Accepted: sr.NAccepted, Epsilon: sr.Epsilon, Failed: sr.Error, endedAt: sr.FinishedAt,
			LabelAccuracy: labelAccuracy(sr.Metrics)}
		if sr.Status == store.RoundAggregated {
			line.Round = sr.ModelVersion
		}
		if sr.Round > last {
			report(line)
		}
	}
	return nil
}

// slowestTo reorders profiles (profile i goes to the client of slice i) so
// that the slowest devices get the slices that hold the largest share of
// the given labels.
func slowestTo(profiles []profile.Profile, labels [][]int, list string) error {
	var want []int
	for _, v := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 || len(labels) == 0 || n >= len(labels[0]) {
			return fmt.Errorf("sim: --slow-labels %q: want label numbers, e.g. 0,1,2", list)
		}
		want = append(want, n)
	}
	share := func(i int) float64 {
		if i >= len(labels) {
			return 0
		}
		total, in := 0, 0
		for l, c := range labels[i] {
			total += c
			if slices.Contains(want, l) {
				in += c
			}
		}
		return float64(in) / float64(max(total, 1))
	}
	bySlice := make([]int, len(profiles))
	for i := range bySlice {
		bySlice[i] = i
	}
	slices.SortStableFunc(bySlice, func(a, b int) int { return cmp.Compare(share(b), share(a)) })
	sorted := slices.Clone(profiles)
	slices.SortStableFunc(sorted, func(a, b profile.Profile) int { return cmp.Compare(a.TrainGFLOPS, b.TrainGFLOPS) })
	for rank, slice := range bySlice {
		profiles[slice] = sorted[rank]
	}
	return nil
}

// worst returns the lowest of accs (0 for none).
func worst(accs []float64) float64 {
	if len(accs) == 0 {
		return 0
	}
	w := accs[0]
	for _, a := range accs {
		w = min(w, a)
	}
	return w
}

// labelAccuracy reads a stored round's per-label accuracies from its
// metrics ("label_acc_0", ...).
func labelAccuracy(metrics json.RawMessage) []float64 {
	var m map[string]float64
	if json.Unmarshal(metrics, &m) != nil {
		return nil
	}
	var accs []float64
	for i := 0; ; i++ {
		v, ok := m[fmt.Sprintf("label_acc_%d", i)]
		if !ok {
			return accs
		}
		accs = append(accs, v)
	}
}

func finishSim(stdout io.Writer, asJSON bool, sum simSummary) error {
	unit := "rounds"
	if sum.Mode == coord.ModeAsync {
		unit = "server steps"
	}
	text := fmt.Sprintf("done: %d %s in %.0fs, final accuracy %.4f (worst label %.4f), ", sum.Rounds, unit, sum.Seconds, sum.FinalAccuracy, sum.WorstLabelAccuracy)
	if sum.Status == store.RunFailed {
		text = fmt.Sprintf("the run failed: %s\n", sum.Error) + text
	}
	if sum.RoundsToTarget != nil {
		text += fmt.Sprintf("%g reached in round %d", sum.Target, *sum.RoundsToTarget)
		if sum.VirtualSecondsToTarget != nil {
			text += fmt.Sprintf(" at virtual %.0fs", *sum.VirtualSecondsToTarget)
		}
	} else {
		text += fmt.Sprintf("%g not reached", sum.Target)
	}
	if sum.VirtualSeconds != nil {
		text += fmt.Sprintf("; virtual time %.0fs", *sum.VirtualSeconds)
	}
	printLine(stdout, asJSON, sum, text)
	return nil
}

func printLine(w io.Writer, asJSON bool, v any, text string) {
	if !asJSON {
		fmt.Fprintln(w, text)
		return
	}
	b, _ := json.Marshal(v)
	fmt.Fprintln(w, string(b))
}

// memLine is a soak check's line: the process's live Go heap (after a
// collection), its resident set, and its resident set once the runtime
// has returned every free page to the OS (debug.FreeOSMemory): RSS that
// the last figure drops is memory the collector had freed but kept, not
// memory in use.
type memLine struct {
	What       string  `json:"what"`
	Round      int     `json:"round"`
	HeapMB     float64 `json:"heap_mb"`
	RSSMB      float64 `json:"rss_mb"`
	RSSFreedMB float64 `json:"rss_after_free_mb"`
	HeapSysMB  float64 `json:"heap_sys_mb"`
	HeapIdleMB float64 `json:"heap_idle_mb"`
	StackSysMB float64 `json:"stack_mb"`
	GoRoutines int     `json:"goroutines"`
}

func memNow(round int) memLine {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mb := func(b uint64) float64 { return math.Round(float64(b)/(1<<20)*10) / 10 }
	m := memLine{What: "mem", Round: round, HeapMB: mb(ms.HeapAlloc), HeapSysMB: mb(ms.HeapSys),
		HeapIdleMB: mb(ms.HeapIdle - ms.HeapReleased), StackSysMB: mb(ms.StackSys), GoRoutines: runtime.NumGoroutine()}
	m.RSSMB = rssMB()
	debug.FreeOSMemory()
	m.RSSFreedMB = rssMB()
	return m
}

// rssMB is the process's resident set in MB (0 where /proc is missing).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return math.Round(kb/1024*10) / 10
		}
	}
	return 0
}

// secureCosts sums what secure rounds cost the virtual clients. Safe for
// concurrent use.
type secureCosts struct {
	mu                     sync.Mutex
	rounds                 int // EventSecure count: a member's completed secure round
	ms                     float64
	up, down               int64
	downloaded, downloadsN int64
}

func (s *secureCosts) observe(e participant.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Type {
	case participant.EventSecure:
		s.rounds++
		s.ms += e.SecureMS
		s.up += int64(e.BytesUp)
		s.down += int64(e.BytesDown)
	case participant.EventDownload:
		s.downloaded += int64(e.Bytes)
		s.downloadsN++
	}
}

// summary returns the run's secure aggregation summary.
func (s *secureCosts) summary(c *coord.SecureAggSettings, lines []simRound) *secureSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := &secureSummary{Threshold: c.Threshold, Graph: c.Graph}
	for _, l := range lines {
		if l.Secure != nil {
			sum.Dropped += l.Secure.Dropped
			if l.Secure.Aborted != "" {
				sum.Aborted++
			}
		} else if strings.Contains(l.Failed, "secure aggregation aborted") {
			sum.Aborted++
		}
	}
	if s.rounds > 0 {
		n := float64(s.rounds)
		sum.ClientMS = s.ms / n
		sum.BytesUp = float64(s.up) / n
		sum.BytesDown = float64(s.down) / n
		if s.downloadsN > 0 {
			sum.BytesDown += float64(s.downloaded) / float64(s.downloadsN)
		}
	}
	return sum
}
