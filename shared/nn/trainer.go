package nn

import (
	"fmt"
	"math/rand/v2"
)

// TrainConfig configures a Trainer.
type TrainConfig struct {
	Batch       int     // largest batch Step will be given (required)
	LR          float32 // SGD learning rate
	Momentum    float32 // SGD momentum (0 = plain SGD)
	WeightDecay float32 // L2 penalty added to the gradient
	Seed        uint64  // drives shuffling and dropout
}

// Trainer runs SGD steps on a Model, updating Model.Params in place. It owns
// its gradient, momentum and activation buffers, allocated once. A Trainer is
// not safe for concurrent use.
type Trainer struct {
	m   *Model
	cfg TrainConfig

	Grads    []float32 // gradient of the last step, laid out like Model.Params
	velocity []float32
	acts     [][]float32 // acts[i] is layer i's output
	dbuf     [2][]float32
	dlogits  []float32
	scr      []scratch
	rng      *rand.Rand

	xbuf []float32 // batch input, for Fit
	ybuf []uint8
	perm []int

	proxMu     float32
	proxAnchor []float32
}

// NewTrainer returns a Trainer for m. It fails on a bad configuration.
func NewTrainer(m *Model, cfg TrainConfig) (*Trainer, error) {
	if cfg.Batch < 1 || cfg.Batch > 1<<16 {
		return nil, fmt.Errorf("nn: batch size %d is not in 1..65536", cfg.Batch)
	}
	if !(cfg.LR > 0 && cfg.LR <= 100) || !(cfg.Momentum >= 0 && cfg.Momentum < 1) || !(cfg.WeightDecay >= 0 && cfg.WeightDecay < 1) {
		return nil, fmt.Errorf("nn: bad optimizer settings lr=%g momentum=%g weight_decay=%g", cfg.LR, cfg.Momentum, cfg.WeightDecay)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5851f42d4c957f2d))
	t := &Trainer{
		m: m, cfg: cfg, rng: rng,
		Grads:   make([]float32, len(m.Params)),
		dlogits: make([]float32, cfg.Batch*m.Classes),
		scr:     m.newScratch(cfg.Batch, rng),
	}
	for _, s := range m.shapes[1:] {
		t.acts = append(t.acts, make([]float32, cfg.Batch*s.Size()))
	}
	for i := range t.dbuf {
		t.dbuf[i] = make([]float32, cfg.Batch*m.maxAct())
	}
	if cfg.Momentum != 0 {
		t.velocity = make([]float32, len(m.Params))
	}
	for i := range t.scr {
		t.scr[i].train = true
	}
	return t, nil
}

// Model returns the model being trained.
func (t *Trainer) Model() *Model { return t.m }

// SetLR changes the learning rate for later steps.
func (t *Trainer) SetLR(lr float32) { t.cfg.LR = lr }

// Reseed restarts the shuffling and dropout stream from seed.
func (t *Trainer) Reseed(seed uint64) { *t.rng = *rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d)) }

// ResetOptimizer zeroes the momentum buffer (a new round starts fresh).
func (t *Trainer) ResetOptimizer() { clear(t.velocity) }

// SetProximal adds FedProx's term mu/2·||w − anchor||² to the loss of later
// steps (mu = 0 turns it off). anchor is read, never written, and must stay
// unchanged while in use.
func (t *Trainer) SetProximal(mu float32, anchor []float32) {
	if mu != 0 && len(anchor) != len(t.m.Params) {
		panic("nn: proximal anchor length mismatch")
	}
	t.proxMu, t.proxAnchor = mu, anchor
}

// Step runs forward, backward and one SGD update on the batch x (len(y)
// samples, Input-shaped, back to back) with labels y. It returns the batch's
// mean loss and the number of correct predictions (before the update).
func (t *Trainer) Step(x []float32, y []uint8) (loss float64, correct int) {
	loss, correct = t.Gradient(x, y)
	t.update()
	return loss, correct
}

// Gradient runs forward and backward without updating: t.Grads then holds
// d(mean loss)/d(Params) for the batch.
func (t *Trainer) Gradient(x []float32, y []uint8) (loss float64, correct int) {
	m, n := t.m, len(y)
	if n < 1 || n > t.cfg.Batch || len(x) < n*m.Input.Size() {
		panic(fmt.Sprintf("nn: batch of %d samples (%d values) does not fit trainer batch %d", n, len(x), t.cfg.Batch))
	}
	for _, v := range y {
		if int(v) >= m.Classes {
			panic(fmt.Sprintf("nn: label %d out of range for %d classes", v, m.Classes))
		}
	}
	in := x[:n*m.Input.Size()]
	for i, l := range m.layers {
		out := t.acts[i][:n*m.shapes[i+1].Size()]
		l.forward(&t.scr[i], m.weights(m.Params, i), in, out, n)
		in = out
	}
	loss, correct = softmaxCE(in, y, m.Classes, t.dlogits)
	dy := t.dlogits[:n*m.Classes]
	for i := len(m.layers) - 1; i >= 0; i-- {
		var dx []float32
		input := x
		if i > 0 {
			dx = t.dbuf[i%2][:n*m.shapes[i].Size()]
			input = t.acts[i-1]
		}
		m.layers[i].backward(&t.scr[i], m.weights(m.Params, i), m.weights(t.Grads, i), input, t.acts[i], dy, dx, n)
		dy = dx
	}
	return loss, correct
}

// update applies SGD with momentum, weight decay and the proximal term,
// with a plain loop for the common case (no momentum, decay or proximal
// term), which matters in wasm where every branch in the loop costs.
func (t *Trainer) update() {
	w := t.m.Params
	g := t.Grads[:len(w)]
	lr, mom, wd, mu := t.cfg.LR, t.cfg.Momentum, t.cfg.WeightDecay, t.proxMu
	switch {
	case t.velocity == nil && wd == 0 && mu == 0:
		for i := range w {
			w[i] -= lr * g[i]
		}
		return
	case wd == 0 && mu == 0:
		v := t.velocity[:len(w)]
		for i := range w {
			v[i] = mom*v[i] + g[i]
			w[i] -= lr * v[i]
		}
		return
	}
	a := t.proxAnchor
	if mu == 0 {
		a = w // unused: d += 0*(w − w)
	}
	a = a[:len(w)]
	v := t.velocity
	for i := range w {
		d := g[i] + wd*w[i] + mu*(w[i]-a[i])
		if v != nil {
			v[i] = mom*v[i] + d
			d = v[i]
		}
		w[i] -= lr * d
	}
}
