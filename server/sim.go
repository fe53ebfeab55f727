package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/sim"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
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
	RoundsToTarget *int    `json:"rounds_to_target"`
	Target         float64 `json:"target"`
	Rounds         int     `json:"rounds"`
	FinalAccuracy  float64 `json:"final_accuracy"`
	BytesUp        int64   `json:"bytes_up"`
	BytesDown      int64   `json:"bytes_down"`
	Seconds        float64 `json:"seconds"`
	Run            string  `json:"run"`
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg coord.Config
	fs.StringVar(&cfg.Model, "model", "mnist-2nn", "model name")
	fs.StringVar(&cfg.Dataset, "dataset", "mnist", "dataset: mnist or cifar10")
	fs.IntVar(&cfg.Clients, "clients", 100, "number of virtual clients (data slices)")
	fs.Float64Var(&cfg.Fraction, "fraction", 0.1, "fraction C of clients selected each round")
	perRound := fs.Int("per-round", 0, "clients selected each round (overrides --fraction)")
	fs.IntVar(&cfg.LocalEpochs, "epochs", 1, "local epochs E")
	fs.IntVar(&cfg.Batch, "batch", 10, "local batch size B")
	fs.Float64Var(&cfg.LR, "lr", 0.05, "client learning rate")
	fs.StringVar(&cfg.Partition, "partition", "iid", "iid, dirichlet:ALPHA or shards:K")
	fs.IntVar(&cfg.Rounds, "rounds", 100, "rounds to run")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed for the model, partition, selection and clients")
	fs.StringVar(&cfg.Codec, "codec", "float32+zstd", "update pipeline, e.g. int8+zstd or delta+topk:0.01+int8+zstd")
	fs.StringVar(&cfg.DownCodec, "down-codec", "float32+zstd", "pipeline of the model sent down")
	fs.StringVar(&cfg.Strategy, "strategy", "fedavg", "aggregation strategy, e.g. fedavg, trimmed-mean:0.2, median")
	fs.IntVar(&cfg.EvalLimit, "eval-limit", 0, "evaluate on the first N test images (0 = all)")
	target := fs.Float64("target", 0.97, "test accuracy whose first round is reported as rounds_to_target")
	stopAtTarget := fs.Bool("stop-at-target", false, "stop once the target is reached")
	asJSON := fs.Bool("json", false, "print one JSON line per round and a summary line")
	db := fs.String("db", store.MemoryPath, "SQLite database to record the run in (default in memory)")
	dataDir := fs.String("data-dir", "", "dataset folder (default: MNIST from the GoMNIST module)")
	var opt sim.Options
	fs.IntVar(&opt.Parallel, "parallel", 0, "clients training at once (default: one per core)")
	fs.Float64Var(&opt.DropProb, "drop", 0, "chance per round that a client drops its connection mid-training")
	verbose := fs.Bool("v", false, "log the coordinator's events to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sim: unexpected argument %q", fs.Arg(0))
	}
	cfg.ClientsPerRound = *perRound
	cfg.StartClients = cfg.Clients // every virtual client joins before round 1
	cfg.MinClients = 1
	cfg.NoDeadline = true
	cfg.Name = "sim"
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	c := coord.New(coord.Deps{Store: st, Log: log,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, *dataDir) }})
	defer c.Close()
	events, unsubscribe := c.Bus().Subscribe(64, true)
	defer unsubscribe()
	run, err := c.CreateRun(ctx, cfg)
	if err != nil {
		return err
	}
	cfg = run.Config()
	fmt.Fprintf(stderr, "sim: run %s, %s on %s, %d clients (%s), C=%g, E=%d, B=%d, lr=%g, %s, codec %s, %d rounds\n",
		run.ID(), cfg.Model, cfg.Dataset, cfg.Clients, cfg.Partition, cfg.Fraction, cfg.LocalEpochs, cfg.Batch, cfg.LR,
		cfg.Strategy, cfg.Codec, cfg.Rounds)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opt.Seed, opt.Log = cfg.Seed, log
	wait := sim.Join(sctx, c, run, cfg.Clients, opt)
	defer wait()

	start := time.Now()
	sum := simSummary{Target: *target, Run: run.ID()}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-run.Done():
			return finishSim(stdout, stderr, *asJSON, sum, start)
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
				if sum.RoundsToTarget == nil && line.TestAccuracy >= *target {
					r := line.Round
					sum.RoundsToTarget = &r
				}
			}
			sum.BytesUp += line.BytesUp
			sum.BytesDown += line.BytesDown
			printLine(stdout, *asJSON, line, fmt.Sprintf("round %d: test accuracy %.4f, loss %.4f, %d/%d updates, %d B up, %d B down, %.1fs",
				line.Round, line.TestAccuracy, line.TestLoss, line.Accepted, line.Selected, line.BytesUp, line.BytesDown, line.Seconds))
			if *stopAtTarget && sum.RoundsToTarget != nil {
				run.Stop(ctx, "target reached")
			}
		}
	}
}

func finishSim(stdout, stderr io.Writer, asJSON bool, sum simSummary, start time.Time) error {
	sum.Seconds = time.Since(start).Seconds()
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
