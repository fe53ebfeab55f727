package nn

import "fmt"

// maxPool2d takes the maximum over non-overlapping size×size windows
// (stride = size), dropping rows and columns that do not fill a window.
type maxPool2d struct {
	size    int
	in, out Shape
}

func (p *maxPool2d) kind() string { return fmt.Sprintf("MaxPool2D(%d)", p.size) }

func (p *maxPool2d) setup(in Shape) (Shape, error) {
	if in.H < p.size || in.W < p.size {
		return Shape{}, fmt.Errorf("nn: max pool %d does not fit input %v", p.size, in)
	}
	p.in = in
	p.out = Shape{in.H / p.size, in.W / p.size, in.C}
	return p.out, nil
}

func (p *maxPool2d) params() []paramDecl { return nil }

func (p *maxPool2d) scratchSize(n int) (int, int) { return 0, n * p.out.Size() }

// forward records, for every output, the index in x of the maximum. It
// walks each window's pixels in order and compares runs of channels, which
// are contiguous in NHWC.
func (p *maxPool2d) forward(s *scratch, _, x, y []float32, n int) {
	W, C, S := p.in.W, p.in.C, p.size
	inSz, outSz := p.in.Size(), p.out.Size()
	for b := 0; b < n; b++ {
		xb, yb := x[b*inSz:(b+1)*inSz], y[b*outSz:(b+1)*outSz]
		arg := s.i[b*outSz : (b+1)*outSz]
		o := 0
		for oh := 0; oh < p.out.H; oh++ {
			for ow := 0; ow < p.out.W; ow++ {
				best, bi := yb[o:o+C], arg[o:o+C]
				first := ((oh*S)*W + ow*S) * C
				copy(best, xb[first:first+C])
				for ch := range bi {
					bi[ch] = int32(first + ch)
				}
				for kh := 0; kh < S; kh++ {
					for kw := 0; kw < S; kw++ {
						j0 := ((oh*S+kh)*W + ow*S + kw) * C
						if j0 == first {
							continue
						}
						px := xb[j0 : j0+C]
						for ch, v := range px {
							if v > best[ch] {
								best[ch], bi[ch] = v, int32(j0+ch)
							}
						}
					}
				}
				o += C
			}
		}
	}
}

func (p *maxPool2d) backward(s *scratch, _, _, _, _, dy, dx []float32, n int) {
	if dx == nil {
		return
	}
	inSz, outSz := p.in.Size(), p.out.Size()
	clear(dx[:n*inSz])
	for b := 0; b < n; b++ {
		dxb := dx[b*inSz : (b+1)*inSz]
		arg := s.i[b*outSz : (b+1)*outSz]
		for o, v := range dy[b*outSz : (b+1)*outSz] {
			dxb[arg[o]] += v
		}
	}
}
