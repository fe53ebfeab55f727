package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gradCase is one layer under a finite-difference gradient check.
type gradCase struct {
	name string
	l    layer
	in   Shape
	n    int
}

func gradCases() []gradCase {
	return []gradCase{
		{"dense", &dense{out: 5}, Shape{1, 1, 7}, 3},
		{"conv-same-3x3", &conv2d{filters: 4, k: 3, stride: 1, pad: Same}, Shape{5, 6, 2}, 2},
		{"conv-valid-3x3", &conv2d{filters: 3, k: 3, stride: 1, pad: Valid}, Shape{6, 5, 3}, 2},
		{"conv-same-5x5", &conv2d{filters: 2, k: 5, stride: 1, pad: Same}, Shape{7, 7, 2}, 2},
		{"conv-same-stride2", &conv2d{filters: 3, k: 3, stride: 2, pad: Same}, Shape{7, 6, 2}, 2},
		{"conv-valid-stride2", &conv2d{filters: 2, k: 3, stride: 2, pad: Valid}, Shape{7, 7, 1}, 3},
		{"maxpool", &maxPool2d{size: 2}, Shape{4, 6, 3}, 2},
		{"maxpool-odd", &maxPool2d{size: 2}, Shape{5, 5, 2}, 2},
		{"relu", &relu{}, Shape{3, 3, 2}, 2},
		{"dropout", &dropout{rate: 0.4}, Shape{1, 1, 20}, 3},
		{"flatten", &flatten{}, Shape{3, 4, 5}, 2},
	}
}

// TestLayerGradients checks every layer's backward pass against central
// finite differences of L = Σ y·r for a fixed random r.
func TestLayerGradients(t *testing.T) {
	for _, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			checkLayerGradient(t, tc)
		})
	}
}

func checkLayerGradient(t *testing.T, tc gradCase) {
	rng := rand.New(rand.NewPCG(1, 2))
	out, err := tc.l.setup(tc.in)
	if err != nil {
		t.Fatal(err)
	}
	nw := 0
	for _, p := range tc.l.params() {
		sz := 1
		for _, d := range p.shape {
			sz *= d
		}
		nw += sz
	}
	w, g := randVec(rng, nw, 1), make([]float32, nw)
	x := distinctVec(rng, tc.n*tc.in.Size())
	r := randVec(rng, tc.n*out.Size(), 1)
	y := make([]float32, tc.n*out.Size())
	dx := make([]float32, len(x))
	f, in := tc.l.scratchSize(tc.n)
	s := &scratch{f: make([]float32, f), i: make([]int32, in), train: true}

	loss := func() float64 {
		s.rng = rand.New(rand.NewPCG(7, 7)) // same dropout mask every time
		tc.l.forward(s, w, x, y, tc.n)
		var l float64
		for i, v := range y {
			l += float64(v) * float64(r[i])
		}
		return l
	}
	loss()
	// Poison the outputs to prove backward overwrites rather than accumulates.
	for i := range g {
		g[i] = float32(math.NaN())
	}
	tc.l.backward(s, w, g, x, y, r, dx, tc.n)
	compareFD(t, "x", x, dx, loss)
	compareFD(t, "w", w, g, loss)
}

// compareFD perturbs every value of v and compares the numeric derivative of
// loss with the analytic one in grad.
func compareFD(t *testing.T, what string, v, grad []float32, loss func() float64) {
	t.Helper()
	const eps = 1e-2
	bad := 0
	for i := range v {
		old := v[i]
		v[i] = old + eps
		lp := loss()
		v[i] = old - eps
		lm := loss()
		v[i] = old
		num := (lp - lm) / (2 * eps)
		if d := math.Abs(num - float64(grad[i])); d > 2e-3+2e-3*math.Abs(num) || math.IsNaN(float64(grad[i])) {
			if bad++; bad <= 5 {
				t.Errorf("d/d%s[%d] = %g; finite difference %g", what, i, grad[i], num)
			}
		}
	}
	loss()
}

// TestSoftmaxCEGradient checks the loss gradient against finite differences.
func TestSoftmaxCEGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, classes = 4, 6
	logits := randVec(rng, n*classes, 3)
	labels := []uint8{0, 5, 2, 2}
	d := make([]float32, len(logits))
	softmaxCE(logits, labels, classes, d)
	compareFD(t, "logits", logits, d, func() float64 {
		l, _ := softmaxCE(logits, labels, classes, nil)
		return l
	})
}

// TestSoftmaxCEValue checks the loss on a case worked out by hand.
func TestSoftmaxCEValue(t *testing.T) {
	logits := []float32{0, 0, 0, 0, 1000, 0} // uniform row; a row that overflows a naive exp
	loss, correct := softmaxCE(logits, []uint8{1, 1}, 3, nil)
	want := (math.Log(3) + 0) / 2
	if math.Abs(loss-want) > 1e-9 || correct != 1 {
		t.Errorf("softmaxCE = %g, %d correct; want %g, 1", loss, correct, want)
	}
}

// TestModelGradient checks a whole small model (conv, pool, dropout, flatten,
// dense) through Trainer.Gradient, which exercises the buffer wiring.
func TestModelGradient(t *testing.T) {
	in := Shape{6, 6, 2}
	m, err := build("tiny", in, 3, []namedLayer{
		{"conv1", &conv2d{filters: 3, k: 3, stride: 1, pad: Same}}, {"", &relu{}}, {"", &maxPool2d{size: 2}},
		{"conv2", &conv2d{filters: 4, k: 3, stride: 1, pad: Valid}}, {"", &dropout{rate: 0.3}},
		{"", &flatten{}}, {"fc1", &dense{out: 5}}, {"", &relu{}}, {"fc2", &dense{out: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Init(11)
	tr, err := NewTrainer(m, TrainConfig{Batch: 3, LR: 0.1, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	x := distinctVec(rng, 3*in.Size())
	y := []uint8{0, 2, 1}
	loss := func() float64 {
		tr.Reseed(5)
		l, _ := tr.Gradient(x, y)
		return l
	}
	loss()
	grad := append([]float32(nil), tr.Grads...)
	compareFD(t, "params", m.Params, grad, loss)
}

func randVec(rng *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (2*rng.Float32() - 1) * scale
	}
	return v
}

// distinctVec returns values in ±1 at least 0.05 apart and 0.05 from zero, so
// ReLU and max-pool kinks are farther than the finite-difference step.
func distinctVec(rng *rand.Rand, n int) []float32 {
	p := rng.Perm(n)
	v := make([]float32, n)
	for i := range v {
		v[i] = (float32(p[i]) + 0.5) / float32(n) * 2
		v[i] = (v[i] - 1) + float32(sign(v[i]-1))*0.05
	}
	return v
}

func sign(v float32) int {
	if v < 0 {
		return -1
	}
	return 1
}
