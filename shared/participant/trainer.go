package participant

import (
	"context"
	"fmt"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/nn"
)

// RoundConfig is what a round asks of the local training.
type RoundConfig struct {
	Round       int
	Epochs      int
	Batch       int
	LR          float64
	Momentum    float64
	WeightDecay float64
	Mu          float64 // FedProx proximal coefficient (0 = off)
	Seed        uint64  // shuffling and dropout for this round
	// Label, when set, maps labels before training (label-flip attacks).
	Label func(uint8) uint8
}

// Trainer trains the model for one round. The browser plugs in a trainer
// that spreads the work over several Web Workers; LocalTrainer trains in the
// calling goroutine.
type Trainer interface {
	// Train starts from global, trains as cfg says and writes the trained
	// weights into local (same length). global must not be modified.
	Train(ctx context.Context, global, local []float32, cfg RoundConfig, progress func(nn.Progress)) (nn.FitStats, error)
}

// LocalTrainer trains one model on one data set in the calling goroutine.
type LocalTrainer struct {
	model *nn.Model
	set   *data.Set
	tr    *nn.Trainer
	trCfg nn.TrainConfig
}

// NewLocalTrainer returns a trainer for a copy of model on set.
func NewLocalTrainer(model *nn.Model, set *data.Set) *LocalTrainer {
	return &LocalTrainer{model: model.Clone(), set: set}
}

// Train implements Trainer.
func (t *LocalTrainer) Train(ctx context.Context, global, local []float32, cfg RoundConfig, progress func(nn.Progress)) (nn.FitStats, error) {
	return t.TrainOn(ctx, t.set, global, local, cfg, progress)
}

// TrainOn is Train on another data set of the same shape (so one
// LocalTrainer can serve several simulated clients in turn).
func (t *LocalTrainer) TrainOn(ctx context.Context, set *data.Set, global, local []float32, cfg RoundConfig, progress func(nn.Progress)) (nn.FitStats, error) {
	if len(global) != len(t.model.Params) || len(local) != len(global) {
		return nn.FitStats{}, fmt.Errorf("participant: model has %d parameters, got %d", len(t.model.Params), len(global))
	}
	want := nn.TrainConfig{Batch: cfg.Batch, LR: float32(cfg.LR), Momentum: float32(cfg.Momentum), WeightDecay: float32(cfg.WeightDecay), Seed: cfg.Seed}
	if t.tr == nil || t.trCfg != want {
		tr, err := nn.NewTrainer(t.model, want)
		if err != nil {
			return nn.FitStats{}, err
		}
		t.tr, t.trCfg = tr, want
	}
	copy(t.model.Params, global)
	t.tr.Reseed(cfg.Seed)
	t.tr.ResetOptimizer()
	t.tr.SetProximal(float32(cfg.Mu), global)
	defer t.tr.SetProximal(0, nil)
	st, err := t.tr.Fit(ctx, set, nil, nn.FitOptions{Epochs: cfg.Epochs, Progress: progress, Label: cfg.Label})
	copy(local, t.model.Params)
	return st, err
}
