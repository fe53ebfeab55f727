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

// worseError reports that local training made the model worse on the
// client's own data: the client declines the round with this reason instead
// of uploading.
type worseError struct {
	before, after float64
	samples       int
}

func (e *worseError) Error() string {
	if math.IsNaN(e.after) || math.IsInf(e.after, 0) {
		return fmt.Sprintf("training diverged: the trained model's loss on this client's data is not finite (it was %.4g before training, on %d samples)",
			e.before, e.samples)
	}
	return fmt.Sprintf("local training made the model worse on this client's data: mean loss %.4g before training, %.4g after (on %d samples)",
		e.before, e.after, e.samples)
}

// guard checks that local training did not make the model worse: it
// compares the mean loss of the received model and of the trained one on
// the same samples of the client's own data. Training minimises exactly
// this loss, so a trained model that is worse on it has diverged or
// oscillated (a learning rate too large for the model), whatever the data's
// distribution. A guard is not safe for concurrent use.
type guard struct {
	set   *data.Set
	idx   []int
	m     nn.Model // shares the client model's layers; Params is the vector under test
	ev    *nn.Evaluator
	yield func()
}

// newGuard returns a guard for models shaped like m on set; yield, when not
// nil, is called between batches.
func newGuard(m *nn.Model, set *data.Set, yield func()) *guard {
	n := min(set.Len(), guardSamples)
	g := &guard{set: set, idx: make([]int, n), m: *m, yield: yield}
	for i := range g.idx {
		g.idx[i] = i * set.Len() / n
	}
	g.ev = nn.NewEvaluator(&g.m, guardBatch)
	return g
}

// check returns a *worseError when trained has a higher (or a non-finite)
// mean loss than received on the guard's samples. A received model whose
// loss is not finite cannot be made worse: any finite result passes.
func (g *guard) check(received, trained []float32) error {
	before, err := g.loss(received)
	if err != nil {
		return err
	}
	after, err := g.loss(trained)
	if err != nil {
		return err
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if !finite(after) || (finite(before) && after > before) {
		return &worseError{before: before, after: after, samples: len(g.idx)}
	}
	return nil
}

// loss returns the mean loss of the parameters params on the guard's samples.
func (g *guard) loss(params []float32) (float64, error) {
	if len(params) != len(g.m.Params) {
		return 0, fmt.Errorf("participant: guard: model has %d parameters, got %d", len(g.m.Params), len(params))
	}
	g.m.Params = params
	var sum float64
	for i := 0; i < len(g.idx); i += guardBatch {
		part := g.idx[i:min(i+guardBatch, len(g.idx))]
		l, _, err := g.ev.Evaluate(g.set, part)
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
