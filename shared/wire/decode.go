package wire

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
)

// decodeScratch holds Decode's temporary buffers between calls.
type decodeScratch struct {
	raw   []byte // zstd output
	plain []byte // unshuffled values
}

var scratchPool = sync.Pool{New: func() any { return new(decodeScratch) }}

// stream is a parsed payload stream: where its sections lie.
type stream struct {
	idx    []byte // top-k index section after the count; nil if dense
	scales []byte // int8 scales, 4 bytes each
	vals   []byte // values, possibly shuffled
}

// Decode decodes a payload encoded with pipeline p for the given tensor
// shapes into dst (reused if large enough) and returns it, len(dst) being
// the shapes' total size. With a delta stage it returns ref + the decoded
// delta (ref must have that length); otherwise ref is ignored. dst must not
// overlap ref or payload. Decode is safe for concurrent use.
//
// Everything in payload is checked before it is trusted: the zstd frame
// declares its size, which must fit the pipeline's largest possible stream
// and lim.MaxDecodedBytes before anything is decompressed; top-k counts
// and indices (strictly increasing, below the length) and int8 scales
// (finite, non-negative) are checked; every decoded value must be finite;
// and the payload must be consumed exactly. Errors wrap ErrTooLarge,
// ErrNotFinite, ErrShape or ErrMalformed; on error dst's contents are
// unspecified.
func Decode(p Pipeline, payload []byte, shapes [][]int, ref, dst []float32, lim Limits) ([]float32, error) {
	lim = lim.withDefaults()
	if err := p.Validate(); err != nil {
		return dst, errorf(ErrMalformed, "%v", err)
	}
	n, err := shapeSize(shapes)
	if err != nil {
		return dst, errorf(ErrShape, "%v", err)
	}
	if n > lim.MaxParams || 4*n > lim.MaxDecodedBytes {
		return dst, errorf(ErrTooLarge, "wire: %d parameters exceed limit %d (or %d decoded bytes)", n, lim.MaxParams, lim.MaxDecodedBytes)
	}
	if p.Delta && len(ref) != n {
		return dst, errorf(ErrShape, "wire: reference has %d elements; shapes hold %d", len(ref), n)
	}
	sc := scratchPool.Get().(*decodeScratch)
	defer scratchPool.Put(sc)
	raw := payload
	if p.Zstd != 0 {
		limit := min(maxStreamSize(p, shapes, n), lim.MaxDecodedBytes)
		sc.raw, err = unzstd(sc.raw, payload, limit)
		if err != nil {
			return dst, err
		}
		raw = sc.raw
	}
	s, err := parseStream(p, raw, shapes, n)
	if err != nil {
		return dst, err
	}
	if p.Shuffle && p.Format.width() > 1 {
		sc.plain = grow(sc.plain, len(s.vals))
		unshuffleBytes(sc.plain, s.vals, p.Format.width())
		s.vals = sc.plain
	}
	dst = grow(dst, n)
	if p.TopK != 0 {
		if p.Delta {
			copy(dst, ref)
		} else {
			clear(dst)
		}
	}
	if !p.Delta {
		ref = nil
	}
	return dst, s.decodeValues(p, shapes, ref, dst)
}

// uvarintLen returns the length of x's uvarint encoding.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// maxStreamSize returns the largest stream pipeline p can produce for n
// values: index section, scales and values.
func maxStreamSize(p Pipeline, shapes [][]int, n int) int {
	m := p.keep(n)
	size := m * p.Format.width()
	if p.Format == Int8 {
		size += 4 * groupCount(shapes, p.RowScales)
	}
	if p.TopK != 0 {
		size += uvarintLen(uint64(m)) + m*uvarintLen(uint64(n-1))
	}
	return size
}

// readUvarint reads a minimally encoded uvarint at b[pos:].
func readUvarint(b []byte, pos int) (uint64, int, bool) {
	x, l := binary.Uvarint(b[pos:])
	if l <= 0 || l != uvarintLen(x) {
		return 0, 0, false
	}
	return x, pos + l, true
}

// parseStream splits raw into its sections and checks the index section,
// the scales and the sizes.
func parseStream(p Pipeline, raw []byte, shapes [][]int, n int) (stream, error) {
	var s stream
	m, pos := n, 0
	if p.TopK != 0 {
		var err error
		m, pos, err = checkIndices(raw, p.keep(n), n)
		if err != nil {
			return s, err
		}
		s.idx = raw[uvarintLen(uint64(m)):pos]
	}
	if p.Format == Int8 {
		g := groupCount(shapes, p.RowScales)
		if len(raw)-pos < 4*g {
			return s, errorf(ErrMalformed, "wire: payload ends inside its %d int8 scales", g)
		}
		s.scales = raw[pos : pos+4*g]
		pos += 4 * g
		for i := range g {
			f := math.Float32frombits(binary.LittleEndian.Uint32(s.scales[4*i:]))
			if f-f != 0 || f < 0 {
				return s, errorf(ErrMalformed, "wire: int8 scale %d is %v; want finite and non-negative", i, f)
			}
		}
	}
	want := m * p.Format.width()
	if got := len(raw) - pos; got != want {
		if got < want {
			return s, errorf(ErrMalformed, "wire: payload holds %d bytes of values; want %d (truncated)", got, want)
		}
		return s, errorf(ErrMalformed, "wire: payload has %d trailing bytes", got-want)
	}
	s.vals = raw[pos:]
	return s, nil
}

// checkIndices reads the top-k count (which must be k) and the k
// gap-encoded indices, checking that they increase strictly and stay below
// n. It returns the count and the position after the index section.
func checkIndices(raw []byte, k, n int) (int, int, error) {
	c, pos, ok := readUvarint(raw, 0)
	if !ok {
		return 0, 0, errorf(ErrMalformed, "wire: bad top-k count")
	}
	if c != uint64(k) {
		return 0, 0, errorf(ErrMalformed, "wire: top-k count %d; want %d", c, k)
	}
	prev := uint64(0)
	for j := range k {
		gap, next, ok := readUvarint(raw, pos)
		if !ok {
			return 0, 0, errorf(ErrMalformed, "wire: bad top-k index %d at byte %d", j, pos)
		}
		pos = next
		if j > 0 && gap == 0 {
			return 0, 0, errorf(ErrMalformed, "wire: top-k index %d repeats index %d; want strictly increasing", j, prev)
		}
		if gap >= uint64(n) || prev+gap >= uint64(n) {
			return 0, 0, errorf(ErrMalformed, "wire: top-k index %d is out of range for %d parameters", j, n)
		}
		prev += gap
	}
	return k, pos, nil
}

// indexIter yields the indices of a checked index section: the first
// entry is the first index (a gap from 0), the others gaps from the last.
type indexIter struct {
	b    []byte
	pos  int
	prev int
}

func (it *indexIter) next() int {
	g, l := binary.Uvarint(it.b[it.pos:])
	it.pos += l
	it.prev += int(g)
	return it.prev
}

// decodeValues writes the values into dst (ref + value with a reference),
// at their indices for a sparse stream, and checks that they are finite.
func (s *stream) decodeValues(p Pipeline, shapes [][]int, ref, dst []float32) error {
	if p.Format == Int8 && s.idx == nil {
		return s.decodeDenseInt8(p, shapes, ref, dst)
	}
	return s.decodeEach(p, shapes, ref, dst)
}

// decodeDenseInt8 is decodeValues for a dense int8 stream (the usual
// update): per scale group, a table of the 255 values q·scale, then one
// tight loop, instead of a dispatch per value. A stream with a bad value is
// decoded again by decodeEach, which names the first bad value, so that
// both give the same values and errors.
func (s *stream) decodeDenseInt8(p Pipeline, shapes [][]int, ref, dst []float32) error {
	var table [256]float32
	g := newGroups(shapes, p.RowScales)
	for gi := 0; g.next(); gi++ {
		scale := math.Float32frombits(binary.LittleEndian.Uint32(s.scales[4*gi:]))
		vals := s.vals[g.start : g.start+g.size]
		if bytes.IndexByte(vals, 0x80) >= 0 { // -128
			return s.decodeEach(p, shapes, ref, dst)
		}
		// Rounded to float32 before ref is added (no fused multiply-add),
		// as decodeEach does.
		for b := range table {
			table[b] = float32(int8(b)) * scale
		}
		out := dst[g.start : g.start+len(vals)]
		bad := false
		if ref != nil {
			r := ref[g.start : g.start+len(vals)]
			for i := range out {
				f := table[vals[i]] + r[i]
				bad = bad || f-f != 0
				out[i] = f
			}
		} else {
			for i := range out {
				f := table[vals[i]]
				bad = bad || f-f != 0
				out[i] = f
			}
		}
		if bad {
			return s.decodeEach(p, shapes, ref, dst)
		}
	}
	return nil
}

// decodeEach is decodeValues one value at a time, for every format and
// for sparse streams.
func (s *stream) decodeEach(p Pipeline, shapes [][]int, ref, dst []float32) error {
	m := len(s.vals) / p.Format.width()
	it := indexIter{b: s.idx}
	sparse := s.idx != nil
	var g groups
	gi, end := -1, 0
	var scale float32
	if p.Format == Int8 {
		g = newGroups(shapes, p.RowScales)
	}
	for j := range m {
		i := j
		if sparse {
			i = it.next()
		}
		var f float32
		switch p.Format {
		case Float32:
			f = math.Float32frombits(binary.LittleEndian.Uint32(s.vals[4*j:]))
		case Float16:
			f = f16ToF32(binary.LittleEndian.Uint16(s.vals[2*j:]))
		case BFloat16:
			f = bf16ToF32(binary.LittleEndian.Uint16(s.vals[2*j:]))
		case Int8:
			for i >= end {
				g.next()
				gi++
				end = g.start + g.size
				scale = math.Float32frombits(binary.LittleEndian.Uint32(s.scales[4*gi:]))
			}
			q := int8(s.vals[j])
			if q == -128 {
				return errorf(ErrMalformed, "wire: int8 value -128 at index %d; want -127..127", i)
			}
			f = float32(float32(q) * scale)
		}
		if ref != nil {
			f += ref[i]
		}
		if f-f != 0 {
			return errorf(ErrNotFinite, "wire: decoded value %v at index %d is not finite", f, i)
		}
		dst[i] = f
	}
	return nil
}
