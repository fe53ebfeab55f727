package nn

import "testing"

// TestFLOPs checks the counts against ones worked out by hand from the
// layer shapes.
func TestFLOPs(t *testing.T) {
	cases := []struct {
		name    string
		in      Shape
		classes int
		macs    int
	}{
		// 784-200-200-10.
		{"mnist-2nn", mnistShape, 10, 784*200 + 200*200 + 200*10},
		// conv1 28×28×32 outputs of 1×5×5, conv2 14×14×64 of 32×5×5,
		// fc1 3136×512, fc2 512×10; pooling and ReLU are free.
		{"mnist-cnn", mnistShape, 10, 28*28*32*25 + 14*14*64*800 + 3136*512 + 512*10},
		// Valid 3×3 convolutions: 26×26×32 of 1×9, 24×24×64 of 32×9; the
		// pool halves 24 to 12, so fc1 sees 12×12×64.
		{"mnist-net", mnistShape, 10, 26*26*32*9 + 24*24*64*288 + 12*12*64*128 + 128*10},
		{"mlp:16", Shape{1, 1, 4}, 3, 4*16 + 16*3},
	}
	for _, c := range cases {
		m, err := New(c.name, c.in, c.classes, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.ForwardFLOPs(), 2*float64(c.macs); got != want {
			t.Errorf("%s: ForwardFLOPs() = %g; want %g", c.name, got, want)
		}
		if got, want := m.TrainFLOPs(600), 600*6*float64(c.macs); got != want {
			t.Errorf("%s: TrainFLOPs(600) = %g; want %g", c.name, got, want)
		}
	}
}

// TestMNIST2NNTrainFLOPs spells out the number the device profiles are fed
// for the model the README measures: 198,800 multiply-adds a sample, so
// 397,600 FLOPs forward and 1,192,800 to train on one sample.
func TestMNIST2NNTrainFLOPs(t *testing.T) {
	m, err := New("mnist-2nn", mnistShape, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ForwardFLOPs(); got != 397_600 {
		t.Errorf("mnist-2nn ForwardFLOPs() = %g; want 397600", got)
	}
	if got := m.TrainFLOPs(1); got != 1_192_800 {
		t.Errorf("mnist-2nn TrainFLOPs(1) = %g; want 1192800", got)
	}
	if got := m.TrainFLOPs(0); got != 0 {
		t.Errorf("mnist-2nn TrainFLOPs(0) = %g; want 0", got)
	}
}
