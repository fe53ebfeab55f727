package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/shared/nn"
)

// epochResult is one line of `train --json`.
type epochResult struct {
	Model         string  `json:"model"`
	Params        int     `json:"params"`
	Epoch         int     `json:"epoch"`
	TrainLoss     float64 `json:"train_loss"`
	TrainAccuracy float64 `json:"train_accuracy"`
	TestLoss      float64 `json:"test_loss"`
	TestAccuracy  float64 `json:"test_accuracy"`
	SamplesPerS   float64 `json:"samples_per_s"`
	Seconds       float64 `json:"seconds"`
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "mnist-2nn", "model name (mnist-2nn, mnist-cnn, mnist-net, cifar10-cnn, mlp:H1,H2,...)")
	dataset := fs.String("dataset", "mnist", "dataset: mnist or cifar10")
	dataDir := fs.String("data-dir", "", "dataset folder (default: MNIST from the GoMNIST module, CIFAR-10 from $QFLARE_CIFAR10_DIR)")
	epochs := fs.Int("epochs", 1, "training epochs")
	batch := fs.Int("batch", 0, "batch size (0 = the model's default: "+defaultsHelp("batch")+")")
	lr := fs.Float64("lr", 0, "learning rate (0 = the model's default: "+defaultsHelp("lr")+")")
	momentum := fs.Float64("momentum", 0, "SGD momentum")
	wd := fs.Float64("weight-decay", 0, "L2 weight decay")
	seed := fs.Uint64("seed", 1, "seed for initialisation, shuffling and dropout")
	limit := fs.Int("limit", 0, "train on the first N training images only (0 = all)")
	schedule := fs.String("schedule", "cosine", "learning-rate schedule over all steps: cosine (decays to 0) or constant")
	asJSON := fs.Bool("json", false, "print one JSON line per epoch on stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("train: unexpected argument %q", fs.Arg(0))
	}
	train, test, err := datasets.Load(*dataset, *dataDir)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("train: --limit %d is negative", *limit)
	}
	if *lr == 0 {
		*lr = nn.DefaultsFor(*model).LR
	}
	if *batch == 0 {
		*batch = nn.DefaultsFor(*model).Batch
	}
	idx := make([]int, train.Len())
	if *limit > 0 && *limit < len(idx) {
		idx = idx[:*limit]
	}
	for i := range idx {
		idx[i] = i
	}
	m, err := nn.New(*model, nn.Shape{H: train.H, W: train.W, C: train.C}, train.Classes, *seed)
	if err != nil {
		return err
	}
	tr, err := nn.NewTrainer(m, nn.TrainConfig{Batch: *batch, LR: float32(*lr), Momentum: float32(*momentum), WeightDecay: float32(*wd), Seed: *seed})
	if err != nil {
		return err
	}
	lrAt, err := lrSchedule(*schedule, float32(*lr), *epochs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "training %s (%d parameters) on %d %s images, batch %d, lr %g\n", m.Name, m.NumParams(), len(idx), *dataset, *batch, *lr)
	for e := 1; e <= *epochs; e++ {
		st, err := tr.Fit(ctx, train, idx, nn.FitOptions{Epochs: 1, Progress: progressPrinter(stderr, e, *epochs), LR: lrAt(e)})
		if err != nil {
			return err
		}
		loss, acc, err := nn.Evaluate(m, test, runtime.GOMAXPROCS(0))
		if err != nil {
			return err
		}
		r := epochResult{Model: m.Name, Params: m.NumParams(), Epoch: e, TrainLoss: st.Loss, TrainAccuracy: st.Accuracy,
			TestLoss: loss, TestAccuracy: acc, SamplesPerS: st.SamplesPerSecond(), Seconds: st.Duration.Seconds()}
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		} else {
			fmt.Fprintf(stdout, "epoch %d: train loss %.4f, test accuracy %.4f, test loss %.4f, %.0f samples/s, %.1fs\n",
				e, r.TrainLoss, r.TestAccuracy, r.TestLoss, r.SamplesPerS, r.Seconds)
		}
	}
	return nil
}

// lrSchedule returns, for each epoch, the per-step learning rate of the
// named schedule spanning all epochs.
func lrSchedule(name string, lr float32, epochs int) (func(epoch int) func(step, steps int) float32, error) {
	switch name {
	case "constant":
		return func(int) func(int, int) float32 { return nil }, nil
	case "cosine":
		return func(epoch int) func(int, int) float32 {
			return func(step, steps int) float32 {
				t := (float64(epoch-1)*float64(steps) + float64(step)) / (float64(epochs) * float64(steps))
				return lr * float32(0.5*(1+math.Cos(math.Pi*t)))
			}
		}, nil
	}
	return nil, fmt.Errorf("train: unknown --schedule %q (cosine or constant)", name)
}

// progressPrinter reports a running epoch on w every few seconds.
func progressPrinter(w io.Writer, epoch, epochs int) func(nn.Progress) {
	last := time.Now()
	return func(p nn.Progress) {
		if time.Since(last) < 5*time.Second && p.Batch != p.Batches {
			return
		}
		last = time.Now()
		left := time.Duration(float64(p.Elapsed) / float64(p.Batch) * float64(p.Batches-p.Batch))
		fmt.Fprintf(w, "epoch %d/%d: batch %d/%d, loss %.4f, %.0f samples/s, %s left\n",
			epoch, epochs, p.Batch, p.Batches, p.Loss, p.SamplesPerSecond(), left.Round(time.Second))
	}
}

// defaultsHelp lists each built-in model's default learning rate ("lr") or
// batch size ("batch") for a flag's help text.
func defaultsHelp(what string) string {
	var parts []string
	for _, name := range nn.Models {
		if strings.HasPrefix(name, "mlp:") {
			continue
		}
		d := nn.DefaultsFor(name)
		v := fmt.Sprint(d.LR)
		if what == "batch" {
			v = fmt.Sprint(d.Batch)
		}
		parts = append(parts, name+" "+v)
	}
	return strings.Join(parts, ", ")
}
