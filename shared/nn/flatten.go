package nn

// flatten turns an HWC activation into a vector in CHW order, the order
// torch.flatten gives an NCHW tensor, so exported dense weights line up.
type flatten struct{ in Shape }

func (f *flatten) kind() string { return "Flatten" }

func (f *flatten) setup(in Shape) (Shape, error) { f.in = in; return Shape{1, 1, in.Size()}, nil }

func (f *flatten) params() []paramDecl { return nil }

func (f *flatten) scratchSize(int) (int, int) { return 0, 0 }

func (f *flatten) forward(_ *scratch, _, x, y []float32, n int) {
	sz, hw, C := f.in.Size(), f.in.H*f.in.W, f.in.C
	for b := 0; b < n; b++ {
		xb, yb := x[b*sz:(b+1)*sz], y[b*sz:(b+1)*sz]
		for p := 0; p < hw; p++ {
			for ch := 0; ch < C; ch++ {
				yb[ch*hw+p] = xb[p*C+ch]
			}
		}
	}
}

func (f *flatten) backward(_ *scratch, _, _, _, _, dy, dx []float32, n int) {
	if dx == nil {
		return
	}
	sz, hw, C := f.in.Size(), f.in.H*f.in.W, f.in.C
	for b := 0; b < n; b++ {
		db, dxb := dy[b*sz:(b+1)*sz], dx[b*sz:(b+1)*sz]
		for p := 0; p < hw; p++ {
			for ch := 0; ch < C; ch++ {
				dxb[p*C+ch] = db[ch*hw+p]
			}
		}
	}
}
