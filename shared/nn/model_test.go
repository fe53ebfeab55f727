package nn

import (
	"fmt"
	"strings"
	"testing"
)

func TestModelParamCounts(t *testing.T) {
	cases := []struct {
		name    string
		in      Shape
		classes int
		want    int
	}{
		{"mnist-2nn", mnistShape, 10, 199_210},
		{"mnist-cnn", mnistShape, 10, 1_663_370},
		{"mnist-net", mnistShape, 10, 1_199_882},
		{"cifar10-cnn", cifarShape, 10, 2_156_490},
		{"mlp:200,200", mnistShape, 10, 199_210},
		{"mlp:16", Shape{1, 1, 4}, 3, 4*16 + 16 + 16*3 + 3},
		{"mlp:8,8,8", Shape{2, 3, 4}, 5, 24*8 + 8 + 2*(8*8+8) + 8*5 + 5},
	}
	for _, c := range cases {
		m, err := New(c.name, c.in, c.classes, 1)
		if err != nil {
			t.Fatalf("New(%q) error: %v", c.name, err)
		}
		if got := m.NumParams(); got != c.want {
			t.Errorf("New(%q).NumParams() = %d; want %d\n%s", c.name, got, c.want, m.Summary())
		}
		sum := 0
		for _, tn := range m.Tensors {
			if tn.Offset != sum {
				t.Errorf("%s: tensor %s at offset %d; want %d", c.name, tn.Name, tn.Offset, sum)
			}
			sum += tn.Size()
		}
		if sum != m.NumParams() {
			t.Errorf("%s: tensors cover %d values; want %d", c.name, sum, m.NumParams())
		}
	}
}

func TestModelTensorNames(t *testing.T) {
	m, err := New("mnist-cnn", mnistShape, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tn := range m.Tensors {
		got = append(got, fmt.Sprint(tn.Name, tn.Shape))
	}
	want := "conv1.weight[32 1 5 5] conv1.bias[32] conv2.weight[64 32 5 5] conv2.bias[64] fc1.weight[512 3136] fc1.bias[512] fc2.weight[10 512] fc2.bias[10]"
	if strings.Join(got, " ") != want {
		t.Errorf("mnist-cnn tensors = %s; want %s", strings.Join(got, " "), want)
	}
}

func TestNewRejectsBadModels(t *testing.T) {
	cases := []struct {
		name    string
		in      Shape
		classes int
		msg     string
	}{
		{"resnet50", mnistShape, 10, "unknown model"},
		{"mnist-cnn", cifarShape, 10, "needs 28x28x1 input"},
		{"cifar10-cnn", mnistShape, 10, "needs 32x32x3 input"},
		{"mlp:", mnistShape, 10, "not an integer"},
		{"mlp:0", mnistShape, 10, "not an integer"},
		{"mlp:10,x", mnistShape, 10, "not an integer"},
		{"mlp:65536,65536", mnistShape, 10, "more than the limit"},
		{"mnist-2nn", mnistShape, 1, "class count"},
		{"mnist-2nn", Shape{0, 28, 1}, 10, "bad input"},
	}
	for _, c := range cases {
		_, err := New(c.name, c.in, c.classes, 1)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("New(%q, %v, %d) error = %v; want it to mention %q", c.name, c.in, c.classes, err, c.msg)
		}
	}
}

func TestInitDeterministic(t *testing.T) {
	a, _ := New("mnist-cnn", mnistShape, 10, 42)
	b, _ := New("mnist-cnn", mnistShape, 10, 42)
	c, _ := New("mnist-cnn", mnistShape, 10, 43)
	same, diff := true, false
	for i := range a.Params {
		same = same && a.Params[i] == b.Params[i]
		diff = diff || a.Params[i] != c.Params[i]
	}
	if !same || !diff {
		t.Errorf("same seed equal = %v (want true), other seed differs = %v (want true)", same, diff)
	}
	// He-uniform bound for conv2 (fan-in 800) and zero biases.
	w := a.Tensors[2].View(a.Params)
	bound := float32(0.0866026) // sqrt(6/800)
	var maxAbs float32
	for _, v := range w {
		maxAbs = max(maxAbs, max(v, -v))
	}
	if maxAbs > bound || maxAbs < 0.9*bound {
		t.Errorf("conv2.weight max |w| = %g; want just under %g", maxAbs, bound)
	}
	for _, v := range a.Tensors[3].View(a.Params) {
		if v != 0 {
			t.Fatalf("conv2.bias not zero-initialised: %g", v)
		}
	}
}

func TestCloneIsIndependent(t *testing.T) {
	a, _ := New("mnist-2nn", mnistShape, 10, 1)
	b := a.Clone()
	b.Params[0] += 1
	if a.Params[0] == b.Params[0] {
		t.Error("Clone shares Params with the original")
	}
}
