package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/qflare/qflare/shared/kernels"
	"gonum.org/v1/gonum/blas/blas32"
)

func newStepper(tb testing.TB, name string, batch int) (*Trainer, []float32, []uint8) {
	m, err := New(name, mnistShape, 10, 1)
	if err != nil {
		tb.Fatal(err)
	}
	tr, err := NewTrainer(m, TrainConfig{Batch: batch, LR: 0.01, Seed: 1}) // plain SGD, as FL clients (and TF.js's peer benchmark) train
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*m.Input.Size())
	for i := range x {
		x[i] = rng.Float32()
	}
	y := make([]uint8, batch)
	for i := range y {
		y[i] = uint8(i % 10)
	}
	return tr, x, y
}

// TestStepDoesNotAllocate checks that a training step allocates nothing
// after warm-up, for every layer type, with our Sgemm (what the browser
// runs). gonum's native Sgemm starts goroutines for large products, a few
// small allocations per call that BenchmarkStep reports.
func TestStepDoesNotAllocate(t *testing.T) {
	prev := blas32.Implementation()
	blas32.Use(kernels.Implementation{})
	defer blas32.Use(prev)
	for _, name := range []string{"mnist-2nn", "mnist-net", "mnist-cnn"} {
		tr, x, y := newStepper(t, name, 2)
		tr.Step(x, y)
		if a := testing.AllocsPerRun(3, func() { tr.Step(x, y) }); a != 0 {
			t.Errorf("%s: Step allocates %v times per call; want 0", name, a)
		}
	}
}

// BenchmarkStep measures one training step (forward, backward, SGD update).
func BenchmarkStep(b *testing.B) {
	for _, name := range []string{"mnist-2nn", "mnist-cnn", "mnist-net"} {
		for _, batch := range []int{10, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				tr, x, y := newStepper(b, name, batch)
				tr.Step(x, y)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					tr.Step(x, y)
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
