package nn

import "fmt"

// dense is a fully connected layer: y = x·Wᵀ + b, W stored [out, in].
type dense struct {
	in, out int
}

func (d *dense) kind() string { return fmt.Sprintf("Dense(%d)", d.out) }

func (d *dense) setup(in Shape) (Shape, error) {
	if in.H != 1 || in.W != 1 {
		return Shape{}, fmt.Errorf("nn: dense layer needs a flat input, got %v (add a Flatten)", in)
	}
	d.in = in.C
	return Shape{1, 1, d.out}, nil
}

func (d *dense) params() []paramDecl {
	return []paramDecl{
		{"weight", []int{d.out, d.in}, d.in},
		{"bias", []int{d.out}, d.in},
	}
}

func (d *dense) scratchSize(int) (int, int) { return 0, 0 }

func (d *dense) forward(_ *scratch, w, x, y []float32, n int) {
	wt, b := w[:d.out*d.in], w[d.out*d.in:]
	gemm(false, true, n, d.out, d.in, x, d.in, wt, d.in, 0, y, d.out)
	addBias(y[:n*d.out], b)
}

func (d *dense) backward(_ *scratch, w, g, x, _, dy, dx []float32, n int) {
	wt := w[:d.out*d.in]
	gw, gb := g[:d.out*d.in], g[d.out*d.in:]
	gemm(true, false, d.out, d.in, n, dy, d.out, x, d.in, 0, gw, d.in)
	sumRows(gb, dy[:n*d.out], 0)
	if dx != nil {
		gemm(false, false, n, d.in, d.out, dy, d.out, wt, d.in, 0, dx, d.in)
	}
}

// addBias adds b to every row of y (rows of len(b)).
func addBias(y, b []float32) {
	for r := 0; r+len(b) <= len(y); r += len(b) {
		row := y[r : r+len(b)]
		for j, v := range b {
			row[j] += v
		}
	}
}

// sumRows writes (beta=0) or adds (beta=1) the column sums of the row-major
// matrix m (rows of len(dst)) into dst.
func sumRows(dst, m []float32, beta float32) {
	if beta == 0 {
		clear(dst)
	}
	for r := 0; r+len(dst) <= len(m); r += len(dst) {
		row := m[r : r+len(dst)]
		for j, v := range row {
			dst[j] += v
		}
	}
}
