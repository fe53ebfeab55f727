package nn

import "fmt"

// Shape is the shape of one sample's activation: height, width and channels,
// stored HWC (channel fastest). A feature vector of n values is {1, 1, n}.
type Shape struct{ H, W, C int }

// Size returns the number of values in one sample of this shape.
func (s Shape) Size() int { return s.H * s.W * s.C }

// String formats the shape as HxWxC.
func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.H, s.W, s.C) }

// Tensor is a named, shaped view into a model's flat parameter vector.
type Tensor struct {
	Name   string // e.g. "conv1.weight"
	Shape  []int  // PyTorch layout, e.g. [32 1 5 5]
	Offset int    // index of the first value in Model.Params
}

// Size returns the number of values in the tensor.
func (t Tensor) Size() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// View returns the tensor's values inside the flat vector v.
func (t Tensor) View(v []float32) []float32 { return v[t.Offset : t.Offset+t.Size()] }
