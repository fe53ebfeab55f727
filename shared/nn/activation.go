package nn

import "fmt"

// relu is max(x, 0).
type relu struct{ size int }

func (r *relu) kind() string { return "ReLU" }

func (r *relu) setup(in Shape) (Shape, error) { r.size = in.Size(); return in, nil }

func (r *relu) params() []paramDecl { return nil }

func (r *relu) scratchSize(int) (int, int) { return 0, 0 }

func (r *relu) forward(_ *scratch, _, x, y []float32, n int) {
	y = y[:n*r.size]
	x = x[:len(y)]
	for i, v := range x {
		if v < 0 {
			v = 0
		}
		y[i] = v
	}
}

func (r *relu) backward(_ *scratch, _, _, _, y, dy, dx []float32, n int) {
	if dx == nil {
		return
	}
	dx = dx[:n*r.size]
	y = y[:len(dx)]
	for i, v := range dy[:len(dx)] {
		if y[i] > 0 {
			dx[i] = v
		} else {
			dx[i] = 0
		}
	}
}

// dropout zeroes each value with probability rate while training and scales
// the rest by 1/(1-rate) (inverted dropout); it is the identity otherwise.
type dropout struct {
	rate float32
	size int
}

func (d *dropout) kind() string { return fmt.Sprintf("Dropout(%g)", d.rate) }

func (d *dropout) setup(in Shape) (Shape, error) { d.size = in.Size(); return in, nil }

func (d *dropout) params() []paramDecl { return nil }

func (d *dropout) scratchSize(n int) (int, int) { return n * d.size, 0 }

func (d *dropout) forward(s *scratch, _, x, y []float32, n int) {
	y, x = y[:n*d.size], x[:n*d.size]
	if !s.train {
		copy(y, x)
		return
	}
	mask := s.f[:len(y)]
	keep := 1 / (1 - d.rate)
	for i := range mask {
		if s.rng.Float32() < d.rate {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
		y[i] = x[i] * mask[i]
	}
}

func (d *dropout) backward(s *scratch, _, _, _, _, dy, dx []float32, n int) {
	if dx == nil {
		return
	}
	dx = dx[:n*d.size]
	mask := s.f[:len(dx)]
	for i, v := range dy[:len(dx)] {
		dx[i] = v * mask[i]
	}
}
