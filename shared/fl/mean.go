package fl

import (
	"context"
	"fmt"
	"sync"
)

// stepper is implemented by strategies whose aggregate is the mean of the
// round's deltas followed by a server step (FedAvg, FedProx and the server
// optimizers). DP needs it to put its noise between the two.
type stepper interface {
	Strategy
	// step applies the server update for the averaged delta avg (len = model)
	// to global, writing dst (which may alias global). It is called once per
	// successful round and is where persistent state changes.
	step(global []float32, avg []float64, dst []float32) (map[string]float64, error)
}

// mean is FedAvg (McMahan et al. 2017) and FedProx (Li et al. 2020): the new
// model is global + eta·sum(n_i·delta_i)/sum(n_i), with the server learning
// rate eta 1 by default (the original algorithms; Reddi et al. 2021 and
// Charles et al. 2021 study eta ≠ 1). FedProx differs only in the Mu it asks
// clients to use.
type mean struct {
	name string
	mu   float64 // FedProx proximal coefficient; 0 for FedAvg
	eta  float64 // server learning rate
}

// Name returns "fedavg" or "fedprox".
func (s *mean) Name() string { return s.name }

// ConfigureFit sets Mu for FedProx and returns base unchanged for FedAvg.
func (s *mean) ConfigureFit(_ int, base FitConfig) FitConfig {
	if s.name == "fedprox" {
		base.Mu = s.mu
	}
	return base
}

// Begin starts a streaming weighted average.
func (s *mean) Begin(_ int, global []float32) Aggregation { return newMeanAgg(s, global) }

func (s *mean) step(global []float32, avg []float64, dst []float32) (map[string]float64, error) {
	for i, a := range avg { // with eta 1 this is exactly global + a
		dst[i] = float32(float64(global[i]) + s.eta*a)
	}
	return nil, nil
}

// meanAgg is the streaming sample-weighted average shared by every stepper:
// it folds each n_i·delta_i into an exact fixed-point sum (see Partial), so
// its memory does not depend on the number of clients and the model does not
// depend on the order of Adds or on how updates were grouped into partials.
// It divides by sum(n_i) and rounds to float32 once, in step.
type meanAgg struct {
	mu     sync.Mutex
	st     stepper
	global []float32
	part   *Partial
	done   bool
}

func newMeanAgg(st stepper, global []float32) *meanAgg {
	checkGlobal(global)
	return &meanAgg{st: st, global: global, part: NewPartial(len(global))}
}

// Add folds u.Delta, weighted by u.Samples, into the running sum.
func (a *meanAgg) Add(ctx context.Context, u Update) error {
	// The check (a pass over u for its norm) reads only u and the model's
	// size, so it runs before the lock: concurrent folds wait for one
	// another only while they add.
	nrm, err := checkUpdate(u, len(a.global))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return ErrFinished
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	return a.part.add(u, nrm)
}

// AddPartial merges a partial sum of updates folded elsewhere.
func (a *meanAgg) AddPartial(ctx context.Context, p *Partial) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return ErrFinished
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return a.part.Merge(p)
}

// Finish divides by the total weight and applies the strategy's server step.
func (a *meanAgg) Finish(ctx context.Context, dst []float32) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return Result{}, ErrFinished
	}
	checkDst(dst, a.part.Len())
	if err := ctxErr(ctx); err != nil {
		return Result{}, err
	}
	p := a.part
	if p.Count == 0 {
		return Result{Metrics: newMetrics()}, ErrNoUpdates
	}
	a.done = true
	avg := make([]float64, p.Len())
	if err := p.Mean(avg); err != nil {
		return Result{}, err
	}
	m := newMetrics()
	m["weight"] = float64(p.Weight)
	m["mean_norm"] = p.NormSum / float64(p.Count)
	m["agg_norm"] = norm64(avg)
	sm, err := a.st.step(a.global, avg, dst)
	if err != nil {
		return Result{}, err
	}
	for key, v := range sm {
		m[key] = v
	}
	verdicts := make([]Verdict, len(p.Clients))
	for i, c := range p.Clients {
		verdicts[i] = Verdict{Client: c}
	}
	a.part = nil
	return Result{Used: p.Count, Verdicts: verdicts, Metrics: m}, nil
}

// ProximalGrad adds the FedProx proximal term's gradient, mu·(w − wGlobal), to
// grad in place. It is the client-side half of FedProx (Li et al. 2020), and
// the one function of this package that modifies an argument: grad is an
// accumulator owned by the caller's training step. w and wGlobal are not
// modified. ProximalGrad panics if the lengths differ.
func ProximalGrad(grad, w, wGlobal []float32, mu float32) {
	if len(w) != len(grad) || len(wGlobal) != len(grad) {
		panic(fmt.Sprintf("fl: ProximalGrad lengths %d, %d, %d differ", len(grad), len(w), len(wGlobal)))
	}
	if mu == 0 {
		return
	}
	for i := range grad {
		grad[i] += mu * (w[i] - wGlobal[i])
	}
}
