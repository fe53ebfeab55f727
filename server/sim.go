package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/sim"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/participant"
)

// simRound is one line of `sim --json`.
type simRound struct {
	Round        int      `json:"round"`
	TestAccuracy float64  `json:"test_accuracy"`
	TestLoss     float64  `json:"test_loss"`
	BytesUp      int64    `json:"bytes_up"`
	BytesDown    int64    `json:"bytes_down"`
	Seconds      float64  `json:"seconds"`
	Selected     int      `json:"selected"`
	Accepted     int      `json:"accepted"`
	Epsilon      *float64 `json:"epsilon,omitempty"`
	Failed       string   `json:"failed,omitempty"`
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
}

// simFlags are the simulation flags sim and study share.
type simFlags struct {
	cfg          coord.Config
	perRound     int
	target       float64
	stopAtTarget bool
	db, dataDir  string
	opt          sim.Options
	attack       string
	attackers    float64
	dp           coord.DPSettings
	verbose      bool
}

func (f *simFlags) register(fs *flag.FlagSet) {
	c := &f.cfg
	fs.StringVar(&c.Model, "model", "mnist-2nn", "model name")
	fs.StringVar(&c.Dataset, "dataset", "mnist", "dataset: mnist or cifar10")
	fs.IntVar(&c.Clients, "clients", 100, "number of virtual clients (data slices)")
	fs.Float64Var(&c.Fraction, "fraction", 0.1, "fraction C of clients selected each round")
	fs.IntVar(&f.perRound, "per-round", 0, "clients selected each round (overrides --fraction)")
	fs.IntVar(&c.LocalEpochs, "epochs", 1, "local epochs E")
	fs.IntVar(&c.Batch, "batch", 0, "local batch size B (0 = the model's default: "+defaultsHelp("batch")+")")
	fs.Float64Var(&c.LR, "lr", 0, "client learning rate (0 = the model's default: "+defaultsHelp("lr")+")")
	fs.StringVar(&c.Partition, "partition", "iid", "iid, dirichlet:ALPHA or shards:K")
	fs.IntVar(&c.Rounds, "rounds", 100, "rounds to run")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed for the model, partition, selection and clients")
	fs.StringVar(&c.Codec, "codec", "float32+zstd", "update pipeline, e.g. int8+zstd or delta+topk:0.01+int8+zstd")
	fs.StringVar(&c.DownCodec, "down-codec", "float32+zstd", "pipeline of the model sent down")
	fs.StringVar(&c.Strategy, "strategy", "fedavg", "aggregation strategy, e.g. fedavg, fedavg:2 (server learning rate 2), trimmed-mean:0.2, median, multi-krum")
	fs.BoolVar(&c.Detect, "detect", false, "score every update and exclude anomalies")
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
	fs.Float64Var(&f.opt.DropProb, "drop", 0, "chance per round that a client drops its connection mid-training")
	fs.BoolVar(&f.verbose, "v", false, "log the coordinator's events to stderr")
}

// simResult is what a simulation produced, for studies.
type simResult struct {
	simSummary
	Lines []simRound
	// AttackerIDs are the client ids of the attacking clients.
	AttackerIDs map[string]bool
	Updates     []store.Update // every update of the run, without payloads
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
		printLine(stdout, *asJSON, line, fmt.Sprintf("round %d: test accuracy %.4f, loss %.4f, %d/%d updates, %d B up, %d B down, %.1fs",
			line.Round, line.TestAccuracy, line.TestLoss, line.Accepted, line.Selected, line.BytesUp, line.BytesDown, line.Seconds))
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
	cfg.StartClients = cfg.Clients // every virtual client joins before round 1
	cfg.MinClients = 1
	cfg.NoDeadline = true
	cfg.Name = "sim"
	if f.dp.NoiseMultiplier > 0 || f.dp.ClipNorm > 0 {
		dp := f.dp
		cfg.DP = &dp
	}
	attack, err := fl.ParseAttack(f.attack)
	if err != nil {
		return nil, err
	}
	attackers, err := fl.Attackers(cfg.Clients, f.attackers, cfg.Seed)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, f.db)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	if f.verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	c := coord.New(coord.Deps{Store: st, Log: log,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, f.dataDir) }})
	defer c.Close()
	events, unsubscribe := c.Bus().Subscribe(64, true)
	defer unsubscribe()
	run, err := c.CreateRun(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cfg = run.Config()
	fmt.Fprintf(stderr, "sim: run %s, %s on %s, %d clients (%s), C=%g, E=%d, B=%d, lr=%g, %s, codec %s, %d rounds",
		run.ID(), cfg.Model, cfg.Dataset, cfg.Clients, cfg.Partition, cfg.Fraction, cfg.LocalEpochs, cfg.Batch, cfg.LR,
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
		if !attackers[i] {
			return
		}
		po.Attack = attack
		po.Events = func(e participant.Event) {
			if e.Type == participant.EventWelcome && e.ClientID != "" {
				idMu.Lock()
				res.AttackerIDs[e.ClientID] = true
				idMu.Unlock()
			}
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait := sim.Join(sctx, c, run, cfg.Clients, opt)
	defer wait()

	start := time.Now()
	sum := &res.simSummary
	sum.Target, sum.Run = f.target, run.ID()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-run.Done():
			sum.Seconds = time.Since(start).Seconds()
			if res.Updates, err = st.Updates(ctx, run.ID(), -1); err != nil {
				return nil, err
			}
			return res, nil
		case ev := <-events:
			if ev.Type != coord.EvRoundEnded || ev.Run != run.ID() {
				continue
			}
			rv := ev.Data.(*coord.RoundView)
			line := simRound{Round: int(rv.ModelVersion), TestAccuracy: rv.TestAccuracy, TestLoss: rv.TestLoss,
				BytesUp: rv.BytesUp, BytesDown: rv.BytesDown, Seconds: rv.Seconds, Selected: len(rv.Selected),
				Accepted: rv.Accepted, Epsilon: rv.Epsilon, Failed: rv.Failed}
			if rv.Failed != "" {
				line.Round = rv.Round
			} else {
				sum.Rounds, sum.FinalAccuracy = line.Round, line.TestAccuracy
				if sum.RoundsToTarget == nil && line.TestAccuracy >= f.target {
					r := line.Round
					sum.RoundsToTarget = &r
				}
				if rv.Epsilon != nil {
					sum.Epsilon = rv.Epsilon
				}
			}
			sum.BytesUp += line.BytesUp
			sum.BytesDown += line.BytesDown
			res.Lines = append(res.Lines, line)
			onRound(line)
			if f.stopAtTarget && sum.RoundsToTarget != nil {
				run.Stop(ctx, "target reached")
			}
		}
	}
}

func finishSim(stdout io.Writer, asJSON bool, sum simSummary) error {
	text := fmt.Sprintf("done: %d rounds in %.0fs, final accuracy %.4f, ", sum.Rounds, sum.Seconds, sum.FinalAccuracy)
	if sum.RoundsToTarget != nil {
		text += fmt.Sprintf("%g reached in round %d", sum.Target, *sum.RoundsToTarget)
	} else {
		text += fmt.Sprintf("%g not reached", sum.Target)
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
