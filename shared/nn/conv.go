package nn

import "fmt"

// colBudget caps the im2col buffer (in floats) of one conv layer; a batch is
// lowered in chunks of whole samples that fit.
const colBudget = 1 << 20

// Padding says how Conv2D pads its input.
type Padding int

const (
	// Valid uses no padding: out = (in-k)/stride + 1.
	Valid Padding = iota
	// Same pads so that out = ceil(in/stride), extra padding at the bottom/right.
	Same
)

// conv2d is a 2-D convolution lowered to im2col + GEMM. Input and output are
// NHWC; the weight is stored [out, in, kh, kw] (PyTorch's layout), so an
// im2col row lists its patch in (channel, kh, kw) order.
type conv2d struct {
	filters, k, stride int
	pad                Padding
	in, out            Shape
	padT, padL         int
}

func (c *conv2d) kind() string {
	p := "valid"
	if c.pad == Same {
		p = "same"
	}
	return fmt.Sprintf("Conv2D(%d, %dx%d, stride %d, %s)", c.filters, c.k, c.k, c.stride, p)
}

func (c *conv2d) setup(in Shape) (Shape, error) {
	c.in = in
	switch c.pad {
	case Valid:
		if in.H < c.k || in.W < c.k {
			return Shape{}, fmt.Errorf("nn: conv %dx%d does not fit input %v", c.k, c.k, in)
		}
		c.out = Shape{(in.H-c.k)/c.stride + 1, (in.W-c.k)/c.stride + 1, c.filters}
	case Same:
		oh, ow := (in.H+c.stride-1)/c.stride, (in.W+c.stride-1)/c.stride
		ph := max((oh-1)*c.stride+c.k-in.H, 0)
		pw := max((ow-1)*c.stride+c.k-in.W, 0)
		c.padT, c.padL = ph/2, pw/2
		c.out = Shape{oh, ow, c.filters}
	}
	return c.out, nil
}

func (c *conv2d) kk() int { return c.in.C * c.k * c.k }

func (c *conv2d) params() []paramDecl {
	fanIn, fanOut := c.kk(), c.filters*c.k*c.k
	return []paramDecl{
		{"weight", []int{c.filters, c.in.C, c.k, c.k}, initHe, fanIn, fanOut},
		{"bias", []int{c.filters}, initZero, fanIn, fanOut},
	}
}

// chunk returns how many samples are lowered at once.
func (c *conv2d) chunk(n int) int {
	per := c.out.H * c.out.W * c.kk()
	return max(1, min(n, colBudget/per))
}

func (c *conv2d) scratchSize(n int) (int, int) {
	return c.chunk(n) * c.out.H * c.out.W * c.kk(), 0
}

func (c *conv2d) forward(s *scratch, w, x, y []float32, n int) {
	kk, rows := c.kk(), c.out.H*c.out.W
	wt, b := w[:c.filters*kk], w[c.filters*kk:]
	inSz, outSz := c.in.Size(), c.out.Size()
	step := c.chunk(n)
	for s0 := 0; s0 < n; s0 += step {
		m := min(step, n-s0)
		col := s.f[:m*rows*kk]
		for i := 0; i < m; i++ {
			c.im2col(col[i*rows*kk:(i+1)*rows*kk], x[(s0+i)*inSz:(s0+i+1)*inSz])
		}
		out := y[s0*outSz : (s0+m)*outSz]
		gemm(false, true, m*rows, c.filters, kk, col, kk, wt, kk, 0, out, c.filters)
		addBias(out, b)
	}
}

func (c *conv2d) backward(s *scratch, w, g, x, _, dy, dx []float32, n int) {
	kk, rows := c.kk(), c.out.H*c.out.W
	wt := w[:c.filters*kk]
	gw, gb := g[:c.filters*kk], g[c.filters*kk:]
	inSz, outSz := c.in.Size(), c.out.Size()
	step := c.chunk(n)
	for s0 := 0; s0 < n; s0 += step {
		m := min(step, n-s0)
		beta := float32(1)
		if s0 == 0 {
			beta = 0
		}
		col := s.f[:m*rows*kk]
		for i := 0; i < m; i++ {
			c.im2col(col[i*rows*kk:(i+1)*rows*kk], x[(s0+i)*inSz:(s0+i+1)*inSz])
		}
		d := dy[s0*outSz : (s0+m)*outSz]
		gemm(true, false, c.filters, kk, m*rows, d, c.filters, col, kk, beta, gw, kk)
		sumRows(gb, d, beta)
		if dx == nil {
			continue
		}
		// The columns are no longer needed: reuse the buffer for dcol.
		gemm(false, false, m*rows, kk, c.filters, d, c.filters, wt, kk, 0, col, kk)
		for i := 0; i < m; i++ {
			c.col2im(dx[(s0+i)*inSz:(s0+i+1)*inSz], col[i*rows*kk:(i+1)*rows*kk])
		}
	}
}

// im2col writes one sample's patches: row (oh, ow), column (ch, kh, kw).
func (c *conv2d) im2col(col, x []float32) {
	H, W, C, K := c.in.H, c.in.W, c.in.C, c.k
	i := 0
	for oh := 0; oh < c.out.H; oh++ {
		ih0 := oh*c.stride - c.padT
		for ow := 0; ow < c.out.W; ow++ {
			iw0 := ow*c.stride - c.padL
			for ch := 0; ch < C; ch++ {
				for kh := 0; kh < K; kh++ {
					ih := ih0 + kh
					dst := col[i : i+K]
					i += K
					if ih < 0 || ih >= H {
						clear(dst)
						continue
					}
					src := x[ih*W*C+ch:]
					for kw := range dst {
						if iw := iw0 + kw; iw >= 0 && iw < W {
							dst[kw] = src[iw*C]
						} else {
							dst[kw] = 0
						}
					}
				}
			}
		}
	}
}

// col2im overwrites dx with the sum of the patch gradients in col.
func (c *conv2d) col2im(dx, col []float32) {
	clear(dx)
	H, W, C, K := c.in.H, c.in.W, c.in.C, c.k
	i := 0
	for oh := 0; oh < c.out.H; oh++ {
		ih0 := oh*c.stride - c.padT
		for ow := 0; ow < c.out.W; ow++ {
			iw0 := ow*c.stride - c.padL
			for ch := 0; ch < C; ch++ {
				for kh := 0; kh < K; kh++ {
					ih := ih0 + kh
					src := col[i : i+K]
					i += K
					if ih < 0 || ih >= H {
						continue
					}
					dst := dx[ih*W*C+ch:]
					for kw, v := range src {
						if iw := iw0 + kw; iw >= 0 && iw < W {
							dst[iw*C] += v
						}
					}
				}
			}
		}
	}
}
