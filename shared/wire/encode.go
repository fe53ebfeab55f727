package wire

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
)

// Encoder encodes vectors through one pipeline for one list of tensor
// shapes. It keeps, between calls, the top-k error-feedback residual, the
// random source of stochastic rounding and scratch buffers, so that a
// warmed-up Encode allocates nothing beyond growing dst.
//
// An Encoder is not safe for concurrent use.
type Encoder struct {
	p      Pipeline
	shapes [][]int
	n, k   int
	rng    rand.PCG

	residual []float32 // top-k only: what earlier calls did not send
	work     []float32 // x - ref + residual; becomes the next residual
	mag      []float32 // top-k selection scratch
	idx      []int32   // selected indices
	scales   []float32 // int8 scales
	raw      []byte    // stream before zstd
	plain    []byte    // values before shuffle
}

// NewEncoder returns an Encoder for pipeline p and the model's tensor
// shapes (in flat order; their sizes sum to the vector length). seed seeds
// the stochastic rounding of int8, so equal seeds give equal bytes. It
// panics if p or shapes are invalid: both come from the program, not from
// the wire.
func NewEncoder(p Pipeline, shapes [][]int, seed uint64) *Encoder {
	if err := p.Validate(); err != nil {
		panic(err.Error())
	}
	n, err := shapeSize(shapes)
	if err != nil {
		panic(err.Error())
	}
	e := &Encoder{p: p, n: n, k: p.keep(n)}
	for _, s := range shapes {
		e.shapes = append(e.shapes, slices.Clone(s))
	}
	e.Seed(seed)
	if p.TopK != 0 {
		e.residual = make([]float32, n)
	}
	return e
}

// Pipeline returns the encoder's pipeline.
func (e *Encoder) Pipeline() Pipeline { return e.p }

// Len returns the length of the vectors the encoder takes.
func (e *Encoder) Len() int { return e.n }

// Seed reseeds the random source of stochastic rounding.
func (e *Encoder) Seed(seed uint64) { e.rng.Seed(seed, 0x9e3779b97f4a7c15) }

// Reset clears the top-k error-feedback residual, as if no vector had been
// encoded yet (call it when the reference model is replaced wholesale, e.g.
// after rejoining a run).
func (e *Encoder) Reset() { clear(e.residual) }

// Release drops the encoder's scratch buffers (they come back, sized, with
// the next Encode), keeping only its state: the top-k residual. A client
// that encodes once a round and idles in between (a simulation holds
// hundreds) holds no model-sized scratch while it idles.
func (e *Encoder) Release() {
	e.work, e.mag, e.idx, e.scales, e.raw, e.plain = nil, nil, nil, nil, nil, nil
}

// Residual returns the top-k error-feedback residual: what earlier calls
// did not send, quantization error included. It is nil without a topk
// stage. The slice is the encoder's own; callers must not modify it.
func (e *Encoder) Residual() []float32 { return e.residual }

// Encode appends the encoding of x to dst and returns the extended slice.
// With a delta stage it encodes x - ref (ref must have x's length);
// otherwise ref is ignored. With a topk stage the residual kept from earlier
// calls is added first, and what this call does not send (including the
// quantization error of what it sends) becomes the new residual. Encode
// returns an error wrapping ErrShape for a length mismatch and ErrNotFinite
// for a non-finite input or a value that overflows the value format; the
// residual is then unchanged and dst is returned as it was.
func (e *Encoder) Encode(dst []byte, x, ref []float32) ([]byte, error) {
	if len(x) != e.n {
		return dst, errorf(ErrShape, "wire: vector has %d elements; shapes hold %d", len(x), e.n)
	}
	if e.p.Delta && len(ref) != e.n {
		return dst, errorf(ErrShape, "wire: reference has %d elements; shapes hold %d", len(ref), e.n)
	}
	v, err := e.input(x, ref)
	if err != nil {
		return dst, err
	}
	m := e.n
	var idx []int32
	if e.p.TopK != 0 {
		e.mag = grow(e.mag, e.n)
		idx = selectTopK(e.idx[:0], v, e.mag, e.k)
		e.idx = idx
		m = len(idx)
	}
	out := dst
	if e.p.Zstd != 0 {
		out = e.raw[:0]
	}
	start := len(out)
	if idx != nil {
		out = appendIndices(out, idx)
	}
	out, err = e.appendValues(out, v, idx, m)
	if err != nil {
		return dst, err
	}
	if e.p.Zstd != 0 {
		e.raw = out
		dst = appendZstd(dst, out[start:], e.p.Zstd)
	} else {
		dst = out
	}
	if e.p.TopK != 0 {
		e.residual, e.work = e.work, e.residual // v now holds what was not sent
	}
	return dst, nil
}

// input returns the vector to encode: x itself, or x - ref + residual in
// the encoder's scratch. It checks that every value is finite.
func (e *Encoder) input(x, ref []float32) ([]float32, error) {
	if !e.p.Delta && e.p.TopK == 0 {
		for i, f := range x {
			if f-f != 0 {
				return nil, errorf(ErrNotFinite, "wire: input value %v at index %d is not finite", f, i)
			}
		}
		return x, nil
	}
	e.work = grow(e.work, e.n)
	v := e.work
	copy(v, x)
	if e.p.Delta {
		for i, r := range ref {
			v[i] -= r
		}
	}
	if e.p.TopK != 0 {
		for i, r := range e.residual {
			v[i] += r
		}
	}
	for i, f := range v {
		if f-f != 0 {
			return nil, errorf(ErrNotFinite, "wire: input value %v at index %d is not finite (x=%v)", f, i, x[i])
		}
	}
	return v, nil
}

// appendIndices appends the top-k index section: uvarint count, then the
// first index and the gaps between successive indices, as uvarints.
func appendIndices(out []byte, idx []int32) []byte {
	out = binary.AppendUvarint(out, uint64(len(idx)))
	prev := int32(0)
	for _, i := range idx {
		out = binary.AppendUvarint(out, uint64(i-prev))
		prev = i
	}
	return out
}

// appendValues appends the scales (int8) and the m values of v (at idx,
// or all of v when idx is nil) in the pipeline's format, shuffled if asked.
// With a topk stage it subtracts each sent value as decoded from v, so v
// becomes the residual.
func (e *Encoder) appendValues(out []byte, v []float32, idx []int32, m int) ([]byte, error) {
	w := e.p.Format.width()
	if e.p.Format == Int8 {
		out = e.appendScales(out, v, idx)
	}
	shuffle := e.p.Shuffle && w > 1
	var vals []byte
	if shuffle {
		e.plain = grow(e.plain, m*w)
		vals = e.plain
	} else {
		out = slices.Grow(out, m*w)
		vals = out[len(out) : len(out)+m*w]
	}
	var err error
	switch e.p.Format {
	case Float32:
		e.putFloat32(vals, v, idx)
	case Float16, BFloat16:
		err = e.putHalf(vals, v, idx)
	case Int8:
		e.putInt8(vals, v, idx)
	}
	if err != nil {
		return out, err
	}
	if shuffle {
		n := len(out)
		out = slices.Grow(out, m*w)[:n+m*w]
		shuffleBytes(out[n:], vals, w)
		return out, nil
	}
	return out[:len(out)+m*w], nil
}

// at returns the flat index of the j-th value sent.
func at(idx []int32, j int) int {
	if idx == nil {
		return j
	}
	return int(idx[j])
}

func (e *Encoder) putFloat32(vals []byte, v []float32, idx []int32) {
	if idx == nil {
		for j, f := range v {
			binary.LittleEndian.PutUint32(vals[4*j:], math.Float32bits(f))
		}
		return
	}
	for j, i := range idx {
		binary.LittleEndian.PutUint32(vals[4*j:], math.Float32bits(v[i]))
		v[i] = 0
	}
}

func (e *Encoder) putHalf(vals []byte, v []float32, idx []int32) error {
	bf := e.p.Format == BFloat16
	for j := range len(vals) / 2 {
		i := at(idx, j)
		f := v[i]
		var h uint16
		var d float32
		if bf {
			h = f32ToBF16(f)
			d = bf16ToF32(h)
		} else {
			h = f32ToF16(f)
			d = f16ToF32(h)
		}
		if d-d != 0 {
			return errorf(ErrNotFinite, "wire: value %v at index %d overflows %v", f, i, e.p.Format)
		}
		binary.LittleEndian.PutUint16(vals[2*j:], h)
		if idx != nil {
			v[i] = f - d
		}
	}
	return nil
}

// appendScales computes one scale per group (maxabs/127 of the values
// sent in it) into e.scales and appends them as float32.
func (e *Encoder) appendScales(out []byte, v []float32, idx []int32) []byte {
	e.scales = e.scales[:0]
	g := newGroups(e.shapes, e.p.RowScales)
	j := 0
	for g.next() {
		var maxabs float32
		if idx == nil {
			for _, f := range v[g.start : g.start+g.size] {
				maxabs = max(maxabs, abs32(f))
			}
		} else {
			for ; j < len(idx) && int(idx[j]) < g.start+g.size; j++ {
				maxabs = max(maxabs, abs32(v[idx[j]]))
			}
		}
		e.scales = append(e.scales, maxabs/127)
	}
	for _, s := range e.scales {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(s))
	}
	return out
}

// putInt8 quantizes the values sent with their group's scale, with
// stochastic rounding (floor(x/scale + u), u uniform in [0, 1): unbiased)
// or round-to-nearest-even.
func (e *Encoder) putInt8(vals []byte, v []float32, idx []int32) {
	g := newGroups(e.shapes, e.p.RowScales)
	gi := -1
	var scale float32
	var inv float64
	end := 0
	for j := range vals {
		i := at(idx, j)
		for i >= end {
			g.next()
			gi++
			end = g.start + g.size
			scale = e.scales[gi]
			inv = 0
			if scale > 0 {
				inv = 1 / float64(scale)
			}
		}
		// The conversion keeps the product from fusing with the addition
		// below (Go may fuse x*y+z), so every platform rounds alike.
		t := float64(float64(v[i]) * inv)
		if e.p.Nearest {
			t = math.RoundToEven(t)
		} else {
			t = math.Floor(t + float64(e.rng.Uint64()>>11)*0x1p-53)
		}
		q := int8(min(max(t, -127), 127))
		vals[j] = byte(q)
		if idx != nil {
			v[i] -= float32(float32(q) * scale)
		}
	}
}

// shuffleBytes writes the byte planes of src (elements of w bytes) to dst:
// byte b of element j goes to dst[b*m+j].
func shuffleBytes(dst, src []byte, w int) {
	m := len(src) / w
	for b := range w {
		plane := dst[b*m : (b+1)*m]
		for j := range plane {
			plane[j] = src[j*w+b]
		}
	}
}

// unshuffleBytes inverts shuffleBytes.
func unshuffleBytes(dst, src []byte, w int) {
	m := len(src) / w
	for b := range w {
		plane := src[b*m : (b+1)*m]
		for j, c := range plane {
			dst[j*w+b] = c
		}
	}
}

// grow returns s resized to n, reusing its storage when large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
