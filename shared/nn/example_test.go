package nn_test

import (
	"fmt"

	"github.com/qflare/qflare/shared/nn"
)

// A model is one flat parameter vector with named, PyTorch-shaped views.
func ExampleNew() {
	m, err := nn.New("mnist-cnn", nn.Shape{H: 28, W: 28, C: 1}, 10, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(m.NumParams())
	for _, t := range m.Tensors {
		fmt.Println(t.Name, t.Shape, t.Offset)
	}
	// Output:
	// 1663370
	// conv1.weight [32 1 5 5] 0
	// conv1.bias [32] 800
	// conv2.weight [64 32 5 5] 832
	// conv2.bias [64] 52032
	// fc1.weight [512 3136] 52096
	// fc1.bias [512] 1657728
	// fc2.weight [10 512] 1658240
	// fc2.bias [10] 1663360
}

// One SGD step on a batch of two samples.
func ExampleTrainer_Step() {
	m, _ := nn.New("mlp:8", nn.Shape{H: 1, W: 1, C: 4}, 3, 1)
	tr, _ := nn.NewTrainer(m, nn.TrainConfig{Batch: 2, LR: 0.1})
	x := []float32{1, 0, 0, 1, 0, 1, 1, 0}
	before, _ := tr.Step(x, []uint8{0, 2})
	for range 50 {
		tr.Step(x, []uint8{0, 2})
	}
	after, correct := tr.Step(x, []uint8{0, 2})
	fmt.Println(after < before/10, correct)
	// Output:
	// true 2
}

// Training FLOPs of one local epoch on a 600-sample slice, for device
// emulation (package profile turns them into seconds).
func ExampleModel_TrainFLOPs() {
	m, _ := nn.New("mnist-2nn", nn.Shape{H: 28, W: 28, C: 1}, 10, 1)
	fmt.Println(m.ForwardFLOPs(), m.TrainFLOPs(600))
	// Output:
	// 397600 7.1568e+08
}

// Each model has a default learning rate and batch size.
func ExampleDefaultsFor() {
	d := nn.DefaultsFor("mnist-cnn")
	fmt.Println(d.LR, d.Batch)
	// Output:
	// 0.1 10
}
