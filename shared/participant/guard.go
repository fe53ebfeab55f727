package participant

import (
	"fmt"
	"math"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/nn"
)

// Guard sizes. The guard evaluates the model on up to guardSamples samples of
// the client's data, spread evenly over it, in batches of guardBatch (the
// host may yield between batches). Two forward passes over 256 samples cost
// about as much as training on 170 samples, a few percent of a round with
// E=5 on a 600-sample slice.
const (
	guardSamples = 256
	guardBatch   = 32
)

// guardStep is how far along its update the guard moves the received model
// before comparing losses: a client's share of a FedAvg step among ten
// clients of equal weight (C=0.1 of 100).
const guardStep = 0.1

// worseError reports that local training produced an update that makes the
// model worse on the client's own data: the client declines the round with
// this reason instead of uploading.
type worseError struct {
	before, step float64
	samples      int
}

func (e *worseError) Error() string {
	if math.IsNaN(e.step) || math.IsInf(e.step, 0) {
		return fmt.Sprintf("training diverged: the update's loss on this client's data is not finite (%.4g before training, on %d samples)",
			e.before, e.samples)
	}
	return fmt.Sprintf("local training's update makes the model worse on this client's data: mean loss %.4g for the received model, %.4g a tenth of the way along the update (on %d samples)",
		e.before, e.step, e.samples)
}

// guard checks that an update helps the client's own objective: it compares
// the mean loss of the received model w and of w + guardStep·(trained − w)
// on the same samples of the client's data. A higher loss there means the
// update does not point downhill for the very loss the training minimised:
// the steps diverged or collapsed the network (a learning rate too large for
// the model). The trained model itself is not compared: with a constant
// learning rate and small batches the last SGD iterate is often worse than
// the received average (mnist-2nn, lr 0.1, IID: 65 of 310 updates) while
// its direction still helps, and declining those only wastes the clients'
// work (31 rounds to 97% with or without them). A guard is not safe for
// concurrent use.
type guard struct {
	set   *data.Set
	idx   []int
	m     nn.Model // shares the client model's layers; Params is the vector under test, nil between checks
	n     int      // the model's parameter count
	yield func()
}

// newGuard returns a guard for models shaped like m on set; yield, when not
// nil, is called between batches. Its scratch (the stepped model and the
// evaluator's activations) lives only for a check: an idle client holds a
// few hundred indices.
func newGuard(m *nn.Model, set *data.Set, yield func()) *guard {
	n := min(set.Len(), guardSamples)
	g := &guard{set: set, idx: make([]int, n), m: *m, n: m.NumParams(), yield: yield}
	g.m.Params = nil
	for i := range g.idx {
		g.idx[i] = i * set.Len() / n
	}
	return g
}

// check returns a *worseError when a step along trained − received raises
// the mean loss on the guard's samples, or makes it non-finite. A received
// model whose loss is not finite cannot be made worse: any finite result
// passes.
func (g *guard) check(received, trained []float32) error {
	n := g.n
	if len(received) != n || len(trained) != n {
		return fmt.Errorf("participant: guard: model has %d parameters, got %d and %d", n, len(received), len(trained))
	}
	ev := nn.NewEvaluator(&g.m, guardBatch)
	defer func() { g.m.Params = nil }()
	before, err := g.loss(ev, received)
	if err != nil {
		return err
	}
	mix := getFloats(n)
	defer putFloats(mix)
	for i, w := range received {
		mix[i] = w + guardStep*(trained[i]-w)
	}
	step, err := g.loss(ev, mix)
	if err != nil {
		return err
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if !finite(step) || (finite(before) && step > before) {
		return &worseError{before: before, step: step, samples: len(g.idx)}
	}
	return nil
}

// loss returns the mean loss of the parameters params on the guard's samples.
func (g *guard) loss(ev *nn.Evaluator, params []float32) (float64, error) {
	g.m.Params = params
	var sum float64
	for i := 0; i < len(g.idx); i += guardBatch {
		part := g.idx[i:min(i+guardBatch, len(g.idx))]
		l, _, err := ev.Evaluate(g.set, part)
		if err != nil {
			return 0, fmt.Errorf("participant: guard: %w", err)
		}
		sum += l * float64(len(part))
		if g.yield != nil {
			g.yield()
		}
	}
	return sum / float64(len(g.idx)), nil
}
