package nn

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxParams caps the size of a model built from a name, so a hostile run
// configuration cannot ask for an absurd allocation.
const MaxParams = 64 << 20

// Models lists the built-in model names; "mlp:H1,H2,..." builds an MLP with
// the given hidden widths for any input.
var Models = []string{"mnist-2nn", "mnist-cnn", "mnist-net", "cifar10-cnn", "mlp:H1,H2,..."}

var (
	mnistShape = Shape{28, 28, 1}
	cifarShape = Shape{32, 32, 3}
)

// New builds the named model for inputs of shape in and the given number of
// classes, with parameters initialised from seed.
//
//   - mnist-2nn: 784-200-200-10 ReLU MLP, 199,210 parameters (McMahan et al. 2017)
//   - mnist-cnn: conv5x5 32 same, pool 2, conv5x5 64 same, pool 2, FC 512, FC 10;
//     1,663,370 parameters (McMahan et al. 2017)
//   - mnist-net: PyTorch's MNIST example (conv3x3 32, conv3x3 64, pool 2,
//     dropout 0.25, FC 128, dropout 0.5, FC 10); 1,199,882 parameters
//   - cifar10-cnn: mnist-cnn's structure on 32x32x3; 2,156,490 parameters
//   - mlp:H1,H2,...: ReLU MLP with those hidden widths
func New(name string, in Shape, classes int, seed uint64) (*Model, error) {
	if in.H <= 0 || in.W <= 0 || in.C <= 0 || classes < 2 || classes > 1000 {
		return nil, fmt.Errorf("nn: bad input %v or class count %d", in, classes)
	}
	ls, err := layersFor(name, in, classes)
	if err != nil {
		return nil, err
	}
	if n, err := countParams(in, ls); err != nil {
		return nil, err
	} else if n > MaxParams {
		return nil, fmt.Errorf("nn: model %q has %d parameters, more than the limit %d", name, n, MaxParams)
	}
	m, err := build(name, in, classes, ls)
	if err != nil {
		return nil, err
	}
	m.Init(seed)
	return m, nil
}

// countParams sizes a layer stack without allocating its parameters.
func countParams(in Shape, ls []namedLayer) (int, error) {
	n, cur := 0, in
	for _, nl := range ls {
		out, err := nl.l.setup(cur)
		if err != nil {
			return 0, err
		}
		for _, p := range nl.l.params() {
			sz := 1
			for _, d := range p.shape {
				sz *= d
			}
			n += sz
		}
		if n > MaxParams {
			return n, nil
		}
		cur = out
	}
	return n, nil
}

func layersFor(name string, in Shape, classes int) ([]namedLayer, error) {
	need := func(s Shape) error {
		if in != s {
			return fmt.Errorf("nn: model %q needs %v input, got %v", name, s, in)
		}
		return nil
	}
	switch {
	case name == "mnist-2nn":
		if err := need(mnistShape); err != nil {
			return nil, err
		}
		return mlp([]int{200, 200}, classes), nil
	case name == "mnist-cnn":
		if err := need(mnistShape); err != nil {
			return nil, err
		}
		return fedAvgCNN(classes), nil
	case name == "cifar10-cnn":
		if err := need(cifarShape); err != nil {
			return nil, err
		}
		return fedAvgCNN(classes), nil
	case name == "mnist-net":
		if err := need(mnistShape); err != nil {
			return nil, err
		}
		return []namedLayer{
			{"conv1", &conv2d{filters: 32, k: 3, stride: 1, pad: Valid}}, {"", &relu{}},
			{"conv2", &conv2d{filters: 64, k: 3, stride: 1, pad: Valid}}, {"", &relu{}},
			{"", &maxPool2d{size: 2}}, {"", &dropout{rate: 0.25}}, {"", &flatten{}},
			{"fc1", &dense{out: 128}}, {"", &relu{}}, {"", &dropout{rate: 0.5}},
			{"fc2", &dense{out: classes}},
		}, nil
	case strings.HasPrefix(name, "mlp:"):
		hidden, err := parseWidths(strings.TrimPrefix(name, "mlp:"))
		if err != nil {
			return nil, fmt.Errorf("nn: model %q: %w", name, err)
		}
		return mlp(hidden, classes), nil
	}
	return nil, fmt.Errorf("nn: unknown model %q (known: %s)", name, strings.Join(Models, ", "))
}

// fedAvgCNN is the CNN of McMahan et al. 2017.
func fedAvgCNN(classes int) []namedLayer {
	return []namedLayer{
		{"conv1", &conv2d{filters: 32, k: 5, stride: 1, pad: Same}}, {"", &relu{}}, {"", &maxPool2d{size: 2}},
		{"conv2", &conv2d{filters: 64, k: 5, stride: 1, pad: Same}}, {"", &relu{}}, {"", &maxPool2d{size: 2}},
		{"", &flatten{}},
		{"fc1", &dense{out: 512}}, {"", &relu{}},
		{"fc2", &dense{out: classes}},
	}
}

// mlp is Flatten, then ReLU dense layers of the hidden widths, then logits.
func mlp(hidden []int, classes int) []namedLayer {
	ls := []namedLayer{{"", &flatten{}}}
	for i, h := range hidden {
		ls = append(ls, namedLayer{fmt.Sprintf("fc%d", i+1), &dense{out: h}}, namedLayer{"", &relu{}})
	}
	return append(ls, namedLayer{fmt.Sprintf("fc%d", len(hidden)+1), &dense{out: classes}})
}

func parseWidths(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 16 {
		return nil, fmt.Errorf("%d hidden layers, at most 16", len(parts))
	}
	w := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 1<<16 {
			return nil, fmt.Errorf("hidden width %q is not an integer in 1..65536", p)
		}
		w[i] = n
	}
	return w, nil
}
