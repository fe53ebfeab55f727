package coord

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

// spec is everything about a run that never changes once it is built: its
// configuration, data, partition, model structure, strategy and codecs. Any
// goroutine may read it.
type spec struct {
	id, token string
	cfg       Config
	created   time.Time

	train, evalSet *data.Set
	parts          [][]int
	labels         [][]int // label counts of each slice
	maxSamples     int
	shapes         [][]int
	numParams      int
	modelName      string
	evalModel      *nn.Model // structure for evaluation; Params swapped per use
	strategy       fl.Strategy
	limits         wire.Limits
	upPipe         wire.Pipeline
	downPipe       wire.Pipeline
	evalWorkers    int
}

// newSpec builds a run's spec from a normalised configuration and returns
// the initial model. Errors that come from the configuration (a partition
// the data cannot satisfy, say) wrap ErrBadConfig.
func newSpec(cfg Config, id, token string, created time.Time, deps *Deps) (*spec, []float32, error) {
	train, test, err := deps.Data(cfg.Dataset)
	if err != nil {
		return nil, nil, err
	}
	parts, err := data.Partition(train.Labels, train.Classes, cfg.Clients, cfg.Partition, cfg.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: partitioning %s: %w", ErrBadConfig, cfg.Dataset, err)
	}
	m, err := nn.New(cfg.Model, nn.Shape{H: train.H, W: train.W, C: train.C}, train.Classes, cfg.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	strategy, err := cfg.NewStrategy()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: strategy: %w", ErrBadConfig, err)
	}
	up, _ := wire.ParsePipeline(cfg.Codec)
	down, _ := wire.ParsePipeline(cfg.DownCodec)
	sp := &spec{id: id, token: token, cfg: cfg, created: created, train: train, evalSet: test, parts: parts,
		shapes: m.TensorShapes(), numParams: m.NumParams(), modelName: m.Name, evalModel: m,
		strategy: strategy, upPipe: up, downPipe: down, evalWorkers: deps.EvalWorkers}
	if cfg.EvalLimit > 0 && cfg.EvalLimit < test.Len() {
		idx := make([]int, cfg.EvalLimit)
		for i := range idx {
			idx[i] = i
		}
		sp.evalSet = test.Subset(idx)
	}
	sp.labels = make([][]int, len(parts))
	for i, p := range parts {
		sp.maxSamples = max(sp.maxSamples, len(p))
		sp.labels[i] = train.Subset(p).LabelCounts()
	}
	// An update frame can hold at most 4 bytes a parameter plus headers and
	// per-row scales; anything larger is refused before it is read.
	sp.limits = wire.Limits{MaxParams: sp.numParams, MaxFrameBytes: 5*sp.numParams + 1<<20}
	init := m.Params
	m.Params = nil // evaluate swaps weights in; the structure stays shared
	return sp, init, nil
}

// evaluate measures weights w on the run's evaluation set, on all cores.
func (sp *spec) evaluate(ctx context.Context, w []float32) (loss, acc float64, err error) {
	r, err := sp.report(ctx, w)
	return r.Loss, r.Accuracy, err
}

// report is evaluate with the accuracy on each label.
func (sp *spec) report(ctx context.Context, w []float32) (nn.Report, error) {
	m := *sp.evalModel // shares the immutable structure
	m.Params = w
	if err := ctx.Err(); err != nil {
		return nn.Report{}, err
	}
	return nn.EvaluateReport(&m, sp.evalSet, sp.evalWorkers)
}

func (sp *spec) fitBase() fl.FitConfig {
	return fl.FitConfig{Epochs: sp.cfg.LocalEpochs, Batch: sp.cfg.Batch, LR: sp.cfg.LR, Mu: sp.cfg.Mu}
}

func (sp *spec) runInfo() wire.RunInfo {
	c := sp.cfg
	info := wire.RunInfo{ID: sp.id, Name: c.Name, Model: c.Model, Dataset: c.Dataset, Rounds: c.Rounds,
		LocalEpochs: c.LocalEpochs, Batch: c.Batch, LR: c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay,
		Codec: sp.upPipe.String(), DownCodec: sp.downPipe.String(), Strategy: c.Strategy,
		Mu: sp.strategy.ConfigureFit(1, sp.fitBase()).Mu, Seed: c.Seed}
	if c.Async() {
		info.Mode, info.Buffer = ModeAsync, c.Buffer
	}
	return info
}

// sliceSet returns slice i of the training set.
func (sp *spec) sliceSet(i int) *data.Set { return sp.train.Subset(sp.parts[i]) }

// clientSeed derives a client's per-round seed (shuffling, dropout,
// stochastic rounding) from the run seed.
func clientSeed(seed uint64, round, slice int) uint64 {
	return rand.New(rand.NewPCG(seed, uint64(round)<<32|uint64(slice))).Uint64()
}
