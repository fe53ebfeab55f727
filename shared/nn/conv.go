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
// NHWC, and an im2col row lists its patch in (kh, kw, channel) order, so it is
// built from contiguous runs of channels. The weight is stored [out, in, kh,
// kw] (PyTorch's layout); each pass permutes it (a small tensor next to the
// columns) to [out, kh, kw, in] to match, and permutes its gradient back.
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
	return []paramDecl{
		{"weight", []int{c.filters, c.in.C, c.k, c.k}, c.kk()},
		{"bias", []int{c.filters}, c.kk()},
	}
}

// chunk returns how many samples are lowered at once.
func (c *conv2d) chunk(n int) int {
	per := c.out.H * c.out.W * c.kk()
	return max(1, min(n, colBudget/per))
}

// scratchSize: the permuted weight and weight gradient, then the columns.
func (c *conv2d) scratchSize(n int) (int, int) {
	return 2*c.filters*c.kk() + c.chunk(n)*c.out.H*c.out.W*c.kk(), 0
}

// buffers splits the scratch into the permuted weight, its gradient and the
// column buffer for m samples.
func (c *conv2d) buffers(s *scratch, m int) (wp, gp, col []float32) {
	fk := c.filters * c.kk()
	return s.f[:fk], s.f[fk : 2*fk], s.f[2*fk : 2*fk+m*c.out.H*c.out.W*c.kk()]
}

func (c *conv2d) forward(s *scratch, w, x, y []float32, n int) {
	kk, rows := c.kk(), c.out.H*c.out.W
	b := w[c.filters*kk:]
	inSz, outSz := c.in.Size(), c.out.Size()
	step := c.chunk(n)
	wp, _, _ := c.buffers(s, 0)
	c.permute(wp, w[:c.filters*kk])
	for s0 := 0; s0 < n; s0 += step {
		m := min(step, n-s0)
		_, _, col := c.buffers(s, m)
		for i := 0; i < m; i++ {
			c.im2col(col[i*rows*kk:(i+1)*rows*kk], x[(s0+i)*inSz:(s0+i+1)*inSz])
		}
		out := y[s0*outSz : (s0+m)*outSz]
		gemm(false, true, m*rows, c.filters, kk, col, kk, wp, kk, 0, out, c.filters)
		addBias(out, b)
	}
}

func (c *conv2d) backward(s *scratch, w, g, x, _, dy, dx []float32, n int) {
	kk, rows := c.kk(), c.out.H*c.out.W
	gb := g[c.filters*kk:]
	inSz, outSz := c.in.Size(), c.out.Size()
	step := c.chunk(n)
	wp, gp, _ := c.buffers(s, 0)
	if dx != nil {
		c.permute(wp, w[:c.filters*kk])
	}
	for s0 := 0; s0 < n; s0 += step {
		m := min(step, n-s0)
		beta := float32(1)
		if s0 == 0 {
			beta = 0
		}
		_, _, col := c.buffers(s, m)
		for i := 0; i < m; i++ {
			c.im2col(col[i*rows*kk:(i+1)*rows*kk], x[(s0+i)*inSz:(s0+i+1)*inSz])
		}
		d := dy[s0*outSz : (s0+m)*outSz]
		gemm(true, false, c.filters, kk, m*rows, d, c.filters, col, kk, beta, gp, kk)
		sumRows(gb, d, beta)
		if dx == nil {
			continue
		}
		// The columns are no longer needed: reuse the buffer for dcol.
		gemm(false, false, m*rows, kk, c.filters, d, c.filters, wp, kk, 0, col, kk)
		for i := 0; i < m; i++ {
			c.col2im(dx[(s0+i)*inSz:(s0+i+1)*inSz], col[i*rows*kk:(i+1)*rows*kk])
		}
	}
	c.unpermute(g[:c.filters*kk], gp)
}

// permute writes w ([out, in, kh, kw]) into dst as [out, kh, kw, in].
func (c *conv2d) permute(dst, w []float32) {
	C, KK := c.in.C, c.k*c.k
	for o := 0; o < c.filters; o++ {
		src, d := w[o*C*KK:(o+1)*C*KK], dst[o*C*KK:(o+1)*C*KK]
		for ch := 0; ch < C; ch++ {
			for p := 0; p < KK; p++ {
				d[p*C+ch] = src[ch*KK+p]
			}
		}
	}
}

// unpermute writes g ([out, kh, kw, in]) into dst as [out, in, kh, kw].
func (c *conv2d) unpermute(dst, g []float32) {
	C, KK := c.in.C, c.k*c.k
	for o := 0; o < c.filters; o++ {
		src, d := g[o*C*KK:(o+1)*C*KK], dst[o*C*KK:(o+1)*C*KK]
		for ch := 0; ch < C; ch++ {
			for p := 0; p < KK; p++ {
				d[ch*KK+p] = src[p*C+ch]
			}
		}
	}
}

// im2col writes one sample's patches: row (oh, ow), columns (kh, kw, ch),
// each (kh, kw) a contiguous copy of the pixel's C channels (zeros outside).
func (c *conv2d) im2col(col, x []float32) {
	H, W, C, K := c.in.H, c.in.W, c.in.C, c.k
	i := 0
	for oh := 0; oh < c.out.H; oh++ {
		ih0 := oh*c.stride - c.padT
		for ow := 0; ow < c.out.W; ow++ {
			iw0 := ow*c.stride - c.padL
			for kh := 0; kh < K; kh++ {
				ih := ih0 + kh
				row := col[i : i+K*C]
				i += K * C
				if ih < 0 || ih >= H {
					clear(row)
					continue
				}
				lo, hi := max(0, -iw0), min(K, W-iw0) // kw range inside the image
				hi = max(hi, lo)
				clear(row[:lo*C])
				copy(row[lo*C:hi*C], x[(ih*W+iw0+lo)*C:(ih*W+iw0+hi)*C])
				clear(row[hi*C:])
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
			for kh := 0; kh < K; kh++ {
				ih := ih0 + kh
				row := col[i : i+K*C]
				i += K * C
				if ih < 0 || ih >= H {
					continue
				}
				lo, hi := max(0, -iw0), min(K, W-iw0)
				hi = max(hi, lo)
				src := row[lo*C : hi*C]
				dst := dx[(ih*W+iw0+lo)*C : (ih*W+iw0+hi)*C]
				for j, v := range src {
					dst[j] += v
				}
			}
		}
	}
}
