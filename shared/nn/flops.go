package nn

// Floating-point operation counts, for emulating devices of a given speed
// (package profile turns FLOPs into time).
//
// The convention, the one used for model FLOP budgets in the literature:
//
//   - a layer's forward pass costs 2 FLOPs per multiply-add of its GEMMs
//     (Dense: in×out per sample; Conv2D: outH×outW×filters×(inC×k×k) per
//     sample);
//   - training costs 3× the forward pass: the backward pass computes the
//     input gradient and the weight gradient, each a GEMM of the forward
//     GEMM's size;
//   - bias additions, activations, pooling, dropout and the loss are not
//     counted (they are a few per activation value, against hundreds per
//     output of a GEMM).
//
// The count is of the arithmetic, not of what a trainer does: the first
// layer's input gradient, which nobody needs, is counted too.

// macCounter is a layer that knows its multiply-adds per sample.
type macCounter interface {
	macs() int
}

func (d *dense) macs() int { return d.in * d.out }

func (c *conv2d) macs() int { return c.out.H * c.out.W * c.filters * c.kk() }

// ForwardFLOPs returns the floating-point operations of one sample's
// forward pass: 2 per multiply-add of the model's Dense and Conv2D layers.
func (m *Model) ForwardFLOPs() float64 {
	n := 0
	for _, l := range m.layers {
		if mc, ok := l.(macCounter); ok {
			n += mc.macs()
		}
	}
	return 2 * float64(n)
}

// TrainFLOPs returns the floating-point operations of training on samples
// samples (count every epoch: samples×epochs), forward and backward: 3 times
// ForwardFLOPs per sample. See the convention at the top of flops.go.
func (m *Model) TrainFLOPs(samples int) float64 {
	return 3 * m.ForwardFLOPs() * float64(samples)
}
