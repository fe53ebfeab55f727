package fl

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Exact sums. The mean-based strategies fold each weighted delta n_i·d_i
// into an exact fixed-point sum: every term is rounded once, on its own, to
// a multiple of 2^-fixedBits (toward zero), and the terms are added as
// integers. Integer addition is associative, so the sum, and the float32
// model computed from it, is bit-identical whatever the order of the updates
// and however they were grouped into partial sums before being merged (an
// edge shard's, say). A float64 running sum is only independent of the
// order "in practice": it rounds at every addition.
//
// Representation: two int64 limbs per coordinate, value (a·2^splitBits + b)
// units of 2^-fixedBits. A term x (in units) is split without branches into
// h = trunc(x/2^splitBits) and the exact remainder x − h·2^splitBits, and
// each limb adds its part; the limbs are normalised (carried) only when a
// value is read or written out, so the fold is two multiplies, a truncation
// and two integer adds per coordinate.
//
// Bounds: |d| ≤ MaxDeltaValue and n ≤ MaxSamples, so |n·d| < 2^40 and a term
// is below 2^88 units; each limb part is below 2^44, and 2^19 terms fit in
// an int64 limb. A term n·d of a float32 d with |d| ≥ 2^-25 is an exact
// multiple of 2^-48, so only smaller coordinates are rounded, by less than
// 2^-48.
//
// An update with a Weight w (see Update.Weight) is folded with the factor
// n·w, which is exact in float64 (24 bits each); its term is then rounded
// once more, in the float64 product, but still on its own, so the sum keeps
// its independence from order. The sum of the factors n·w, the mean's
// divisor, is exact: every n·w is a multiple of 2^-47 (w ≥ MinWeight).
const (
	fixedBits = 48
	splitBits = 44
	// MaxPartialCount is the most updates one exact sum may hold.
	MaxPartialCount = 1 << 19
)

var (
	toFixed   = math.Ldexp(1, fixedBits)
	fromFixed = math.Ldexp(1, -fixedBits)
	splitDown = math.Ldexp(1, -splitBits)
	splitUp   = math.Ldexp(1, splitBits)
)

// exactSum is a vector of fixed-point sums, coordinate i worth
// (a[i]·2^splitBits + b[i])·2^-fixedBits.
type exactSum struct {
	a, b []int64
}

func newExactSum(n int) exactSum { return exactSum{a: make([]int64, n), b: make([]int64, n)} }

// addScaled adds scale·d[i] to coordinate i. Callers have checked that
// |scale·d[i]| < 2^40.
func (s *exactSum) addScaled(d []float32, scale float64) {
	k := scale * toFixed
	a, b := s.a[:len(d)], s.b[:len(d)]
	for i, v := range d {
		x := float64(v) * k
		h := int64(x * splitDown)   // truncated toward zero: |h| < 2^44
		r := x - float64(h)*splitUp // exact: |r| < 2^44, same sign as x
		a[i] += h
		b[i] += int64(r) // truncated toward zero too: the term is trunc(x)
	}
}

// merge adds o coordinate by coordinate.
func (s *exactSum) merge(o exactSum) {
	a, b := s.a[:len(o.a)], s.b[:len(o.a)]
	for i := range o.a {
		a[i] += o.a[i]
		b[i] += o.b[i]
	}
}

// normal returns coordinate i carried into its canonical form, with
// 0 ≤ b < 2^splitBits, which depends only on the value.
func (s *exactSum) normal(i int) (a, b int64) {
	c := s.b[i] >> splitBits // floor division
	return s.a[i] + c, s.b[i] - c<<splitBits
}

// value returns coordinate i as a float64, rounded from its canonical form
// (so the same way whatever sums produced it).
func (s *exactSum) value(i int) float64 {
	a, b := s.normal(i)
	return (float64(a)*splitUp + float64(b)) * fromFixed
}

// MaxDeltaValue is the largest magnitude of a delta coordinate an Update may
// carry: a weight that moves by 65536 in one round has diverged or is
// hostile. It keeps the exact sums of the mean-based strategies in range.
const MaxDeltaValue = 1 << 16

// Partial is a sum of updates folded in one place and merged in another: an
// edge shard folds its clients' updates into a Partial and the coordinator
// merges it into the round's aggregation with Aggregation.AddPartial (see
// PartialAdder). The sum is exact, so merging partials gives the
// bit-identical model that adding the same updates one by one gives.
//
// A Partial is not safe for concurrent use.
type Partial struct {
	sum exactSum
	// Weight is the sum of the updates' sample counts.
	Weight int64
	// Count is the number of updates.
	Count int
	// NormSum is the sum of the updates' L2 norms (for metrics; it is a
	// float64 sum, so its last bits depend on the order).
	NormSum float64
	// Clients names the updates' clients, in the order they were added.
	Clients []string
	// wsum is the exact sum of the updates' Samples·Weight, the mean's
	// divisor, once an update with a Weight has been added (wsum.a is not
	// nil); until then the divisor is Weight.
	wsum exactSum
}

// one is the vector that a weight joins wsum as.
var one = []float32{1}

// weigh starts p's sum of weights (see wsum) from the sample counts so far.
func (p *Partial) weigh() {
	if p.wsum.a == nil {
		p.wsum = newExactSum(1)
		p.wsum.addScaled(one, float64(p.Weight))
	}
}

// Weighted reports whether an update with a Weight other than 1 went into p.
func (p *Partial) Weighted() bool { return p.wsum.a != nil }

// NewPartial returns an empty partial for a model of n parameters.
func NewPartial(n int) *Partial {
	if n <= 0 {
		panic("fl: NewPartial of an empty model")
	}
	return &Partial{sum: newExactSum(n)}
}

// Len returns the model size.
func (p *Partial) Len() int { return len(p.sum.a) }

// Add folds u in, weighted by u.Samples. It validates u as an Aggregation's
// Add does and leaves p unchanged on error; it never keeps u.Delta.
func (p *Partial) Add(u Update) error {
	nrm, err := checkUpdate(u, p.Len())
	if err != nil {
		return err
	}
	return p.add(u, nrm)
}

// add folds u, which checkUpdate passed with norm nrm.
func (p *Partial) add(u Update, nrm float64) error {
	if p.Count >= MaxPartialCount {
		return fmt.Errorf("fl: a partial holds at most %d updates", MaxPartialCount)
	}
	f := float64(u.Samples)
	if w := u.scale(); w != 1 || p.wsum.a != nil {
		p.weigh()
		f *= float64(w) // exact: 24 bits times 24 bits
		p.wsum.addScaled(one, f)
	}
	p.sum.addScaled(u.Delta, f)
	p.Weight += int64(u.Samples)
	p.Count++
	p.NormSum += nrm
	p.Clients = append(p.Clients, u.Client)
	return nil
}

// Merge adds q's updates to p. q is not modified.
func (p *Partial) Merge(q *Partial) error {
	if q.Len() != p.Len() {
		return fmt.Errorf("fl: partial of %d parameters merged into one of %d", q.Len(), p.Len())
	}
	if p.Count+q.Count > MaxPartialCount || q.Count < 0 || q.Weight < 0 {
		return fmt.Errorf("fl: merged partial would hold %d updates; limit %d", p.Count+q.Count, MaxPartialCount)
	}
	switch {
	case q.wsum.a != nil:
		p.weigh()
		p.wsum.merge(q.wsum)
	case p.wsum.a != nil:
		p.wsum.addScaled(one, float64(q.Weight))
	}
	p.sum.merge(q.sum)
	p.Weight += q.Weight
	p.Count += q.Count
	p.NormSum += q.NormSum
	p.Clients = append(p.Clients, q.Clients...)
	return nil
}

// Mean writes the weighted mean of the partial's deltas into dst (length
// Len), or returns ErrNoUpdates when it is empty: the sum of the
// Samples·Weight·Delta over the sum of the Samples·Weight.
func (p *Partial) Mean(dst []float64) error {
	if p.Count == 0 || p.Weight == 0 {
		return ErrNoUpdates
	}
	if len(dst) != p.Len() {
		panic(fmt.Sprintf("fl: Partial.Mean dst has length %d, model has %d", len(dst), p.Len()))
	}
	w := float64(p.Weight)
	if p.wsum.a != nil {
		w = p.wsum.value(0)
	}
	for i := range dst {
		dst[i] = p.sum.value(i) / w
	}
	return nil
}

// Partial wire format (little-endian): magic "QFLp", version 1, n (uint32),
// count (uint32), weight (uint64), norm sum (float64 bits), then the n
// coordinates in canonical form, n high limbs then n low limbs (int64 each),
// then count client names, each a uint16 length and its bytes.
// MarshalBinary writes it; UnmarshalPartial checks it.
const (
	partialMagic      = "QFLp"
	partialVersion    = 1
	partialHeaderSize = 4 + 1 + 4 + 4 + 8 + 8
	maxClientName     = 256
)

// MarshalBinary encodes the partial (16 bytes a parameter; the high limbs
// are mostly 0 or -1 and compress well).
func (p *Partial) MarshalBinary() ([]byte, error) {
	if p.Weighted() {
		return nil, errWeightedPartial
	}
	n := p.Len()
	b := make([]byte, partialHeaderSize, partialHeaderSize+16*n+len(p.Clients)*16)
	copy(b, partialMagic)
	b[4] = partialVersion
	binary.LittleEndian.PutUint32(b[5:], uint32(n))
	binary.LittleEndian.PutUint32(b[9:], uint32(p.Count))
	binary.LittleEndian.PutUint64(b[13:], uint64(p.Weight))
	binary.LittleEndian.PutUint64(b[21:], math.Float64bits(p.NormSum))
	lo := make([]int64, n)
	for i := range n {
		var hi int64
		hi, lo[i] = p.sum.normal(i)
		b = binary.LittleEndian.AppendUint64(b, uint64(hi))
	}
	for _, v := range lo {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	for _, c := range p.Clients {
		if len(c) > maxClientName {
			return nil, fmt.Errorf("fl: client name of %d bytes; limit %d", len(c), maxClientName)
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	return b, nil
}

// errWeightedPartial refuses to encode a partial of weighted updates: the
// format carries no sum of weights (edge shards fold only sync rounds,
// whose updates carry none).
var errWeightedPartial = fmt.Errorf("fl: a partial of weighted updates (Update.Weight) has no wire format")

// UnmarshalPartial decodes a partial written by MarshalBinary for a model of
// n parameters, checking sizes before it allocates.
func UnmarshalPartial(b []byte, n int) (*Partial, error) {
	if len(b) < partialHeaderSize || string(b[:4]) != partialMagic {
		return nil, fmt.Errorf("fl: partial: bad header")
	}
	if b[4] != partialVersion {
		return nil, fmt.Errorf("fl: partial: unsupported version %d", b[4])
	}
	if got := int(binary.LittleEndian.Uint32(b[5:])); got != n {
		return nil, fmt.Errorf("fl: partial has %d parameters; the model has %d", got, n)
	}
	count := int(binary.LittleEndian.Uint32(b[9:]))
	weight := int64(binary.LittleEndian.Uint64(b[13:]))
	norms := math.Float64frombits(binary.LittleEndian.Uint64(b[21:]))
	switch {
	case count < 1 || count > MaxPartialCount:
		return nil, fmt.Errorf("fl: partial holds %d updates; want 1..%d", count, MaxPartialCount)
	case weight < int64(count) || weight > int64(count)*MaxSamples:
		return nil, fmt.Errorf("fl: partial weight %d is not in %d..%d", weight, count, int64(count)*MaxSamples)
	case !(norms >= 0) || math.IsInf(norms, 0):
		return nil, fmt.Errorf("fl: partial norm sum %v", norms)
	case len(b) < partialHeaderSize+16*n+2*count:
		return nil, fmt.Errorf("fl: partial of %d bytes is too short for %d parameters and %d clients", len(b), n, count)
	}
	p := NewPartial(n)
	p.Count, p.Weight, p.NormSum = count, weight, norms
	off := partialHeaderSize
	for i := range n {
		hi := int64(binary.LittleEndian.Uint64(b[off+8*i:]))
		lo := int64(binary.LittleEndian.Uint64(b[off+8*(n+i):]))
		// count terms below 2^44 units of the high limb each, plus a carry.
		if q := hi >> splitBits; lo < 0 || lo >= 1<<splitBits || q > int64(count) || q < -int64(count)-1 {
			return nil, fmt.Errorf("fl: partial coordinate %d is out of range", i)
		}
		p.sum.a[i], p.sum.b[i] = hi, lo
	}
	off += 16 * n
	for range count {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("fl: partial: truncated client names")
		}
		l := int(binary.LittleEndian.Uint16(b[off:]))
		off += 2
		if l > maxClientName || len(b)-off < l {
			return nil, fmt.Errorf("fl: partial: bad client name length %d", l)
		}
		p.Clients = append(p.Clients, string(b[off:off+l]))
		off += l
	}
	if off != len(b) {
		return nil, fmt.Errorf("fl: partial: %d trailing bytes", len(b)-off)
	}
	return p, nil
}

// PartialAdder is implemented by the aggregations that can merge a Partial
// (those of the mean-based strategies: fedavg, fedprox, fedavgm, fedadam,
// fedyogi, fedadagrad). AddPartial leaves the aggregation as it was on
// error, and never keeps p.
type PartialAdder interface {
	AddPartial(ctx context.Context, p *Partial) error
}

// AcceptsPartials reports whether s's aggregations merge partials.
func AcceptsPartials(s Strategy) bool {
	g := make([]float32, 1)
	_, ok := s.Begin(0, g).(PartialAdder)
	return ok
}

// Clone returns a deep copy of p.
func (p *Partial) Clone() *Partial {
	q := *p
	q.sum = exactSum{a: slices.Clone(p.sum.a), b: slices.Clone(p.sum.b)}
	q.wsum = exactSum{a: slices.Clone(p.wsum.a), b: slices.Clone(p.wsum.b)}
	q.Clients = slices.Clone(p.Clients)
	return &q
}
