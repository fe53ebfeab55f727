package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Model is a feed-forward network with its parameters in one flat vector.
// Params may be read concurrently; see the package documentation.
type Model struct {
	Name    string    // the name it was built from, e.g. "mnist-cnn"
	Input   Shape     // shape of one input sample
	Classes int       // number of output classes
	Params  []float32 // all parameters, tensors back to back in Tensors order
	Tensors []Tensor  // named views into Params, in a stable order

	layers []layer
	shapes []Shape  // shapes[i] is layer i's input; shapes[len(layers)] the logits
	span   [][2]int // span[i] is layer i's [start, end) in Params
}

// namedLayer is a layer with the name its parameters take ("conv1").
type namedLayer struct {
	name string
	l    layer
}

// build wires layers for the input shape and lays out the parameters.
func build(name string, in Shape, classes int, ls []namedLayer) (*Model, error) {
	m := &Model{Name: name, Input: in, Classes: classes, shapes: []Shape{in}}
	off := 0
	cur := in
	for _, nl := range ls {
		out, err := nl.l.setup(cur)
		if err != nil {
			return nil, err
		}
		start := off
		for _, p := range nl.l.params() {
			t := Tensor{Name: nl.name + "." + p.suffix, Shape: p.shape, Offset: off}
			m.Tensors = append(m.Tensors, t)
			off += t.Size()
		}
		m.layers = append(m.layers, nl.l)
		m.shapes = append(m.shapes, out)
		m.span = append(m.span, [2]int{start, off})
		cur = out
	}
	if cur != (Shape{1, 1, classes}) {
		return nil, fmt.Errorf("nn: model %q ends in %v, want %d logits", name, cur, classes)
	}
	m.Params = make([]float32, off)
	return m, nil
}

// NumParams returns the number of parameters.
func (m *Model) NumParams() int { return len(m.Params) }

// TensorShapes returns the tensor shapes in Params order.
func (m *Model) TensorShapes() [][]int {
	s := make([][]int, len(m.Tensors))
	for i, t := range m.Tensors {
		s[i] = t.Shape
	}
	return s
}

// Clone returns a model with the same structure and a copy of the parameters.
// The layer configuration is immutable after New, so the two share it.
func (m *Model) Clone() *Model {
	c := *m
	c.Params = append([]float32(nil), m.Params...)
	return &c
}

// Init sets the parameters from seed as PyTorch's nn.Linear and nn.Conv2d
// do by default: every weight and bias uniform in ±1/sqrt(fanIn), where
// fanIn counts the inputs of one output (in, or in_channels·kh·kw). The
// result is bit-identical on every platform.
//
// He-uniform (±sqrt(6/fanIn), 2.45 times wider), used before, keeps the
// second moment of activations through ReLU layers but not through max
// pooling, which doubles it. In mnist-cnn the 512 features that feed the
// output layer came out with 13 times the squared norm of mnist-2nn's 200,
// the initial loss was 5 to 8 instead of ln 10, and since an SGD step on the
// output layer moves the logits in proportion to that squared norm (the
// features are non-negative, so they point alike), lr 0.05 diverged. The
// README's "Learning quality" has the measurements.
func (m *Model) Init(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ti := 0
	for _, l := range m.layers {
		for _, p := range l.params() {
			v := m.Tensors[ti].View(m.Params)
			ti++
			bound := 1 / math.Sqrt(float64(p.fanIn))
			for i := range v {
				v[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
	}
}

// Summary describes the layers, their output shapes and parameter counts.
func (m *Model) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: input %v, %d classes, %d parameters\n", m.Name, m.Input, m.Classes, m.NumParams())
	for i, l := range m.layers {
		fmt.Fprintf(&b, "  %-36s -> %-10v %9d\n", l.kind(), m.shapes[i+1], m.span[i][1]-m.span[i][0])
	}
	return b.String()
}

// maxAct returns the largest per-sample activation size, input included.
func (m *Model) maxAct() int {
	n := 0
	for _, s := range m.shapes {
		n = max(n, s.Size())
	}
	return n
}

// weights returns layer i's slice of v (Params or a gradient vector).
func (m *Model) weights(v []float32, i int) []float32 { return v[m.span[i][0]:m.span[i][1]] }

// newScratch allocates the per-layer workspaces for batches of up to n.
func (m *Model) newScratch(n int, rng *rand.Rand) []scratch {
	s := make([]scratch, len(m.layers))
	for i, l := range m.layers {
		f, in := l.scratchSize(n)
		s[i] = scratch{f: make([]float32, f), i: make([]int32, in), rng: rng}
	}
	return s
}
