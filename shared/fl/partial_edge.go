package fl

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// What an edge shard needs beyond Partial's Add and MarshalBinary: folding
// a clipped delta for a DP run, merging such partials into DP's
// aggregation, and writing a partial out without holding its encoding
// whole (a shard of a 1.66M-parameter model would need 26.6 MB more).

// AddClipped folds u.Delta scaled to an L2 norm of at most clip, with
// weight 1 (DP-FedAvg ignores sample counts; a Weight multiplies the
// clipped delta): exactly what DP's
// aggregation does to an update it is given, so that DP can clip at an
// edge shard and add its noise at the coordinator. It reports whether the
// delta was clipped, validates u as Add does and leaves p unchanged on
// error; it never keeps or modifies u.Delta.
func (p *Partial) AddClipped(u Update, clip float64) (clipped bool, err error) {
	if !(clip > 0) || math.IsInf(clip, 0) {
		return false, fmt.Errorf("fl: clip norm %v must be positive", clip)
	}
	nrm, err := checkUpdate(u, p.Len())
	if err != nil {
		return false, err
	}
	if p.Count >= MaxPartialCount {
		return false, fmt.Errorf("fl: a partial holds at most %d updates", MaxPartialCount)
	}
	scale := 1.0
	if nrm > clip {
		scale, clipped = clip/nrm, true
	}
	p.sum.addScaled(u.Delta, scale*float64(u.scale()))
	p.Weight++
	p.Count++
	p.NormSum += nrm
	p.Clients = append(p.Clients, u.Client)
	return clipped, nil
}

// ClippedPartialAdder is implemented by DP's aggregations: they merge a
// partial of deltas clipped elsewhere with AddClipped (each of weight 1)
// to the round's clip norm, which ClipNorm returns.
type ClippedPartialAdder interface {
	// ClipNorm returns the clip norm of the round.
	ClipNorm() float64
	// AddClippedPartial merges p; clipped says, per update in p's order,
	// whether it was clipped (adaptive clipping counts the others). It
	// leaves the aggregation as it was on error and never keeps p.
	AddClippedPartial(ctx context.Context, p *Partial, clipped []bool) error
}

// ClipNorm returns the clip norm this round's updates are clipped to.
func (a *dpAgg) ClipNorm() float64 { return a.clip }

// AddClippedPartial merges a partial of updates clipped to the round's
// clip norm with weight 1 each (Partial.AddClipped).
func (a *dpAgg) AddClippedPartial(ctx context.Context, p *Partial, clipped []bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return ErrFinished
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	switch {
	case p.Len() != len(a.sum):
		return fmt.Errorf("fl: partial of %d parameters merged into a model of %d", p.Len(), len(a.sum))
	case p.Weight != int64(p.Count):
		return fmt.Errorf("fl: a DP partial must weigh each of its %d updates 1, not %d in all", p.Count, p.Weight)
	case len(clipped) != p.Count || len(p.Clients) != p.Count:
		return fmt.Errorf("fl: a partial of %d updates comes with %d clipped flags and %d clients", p.Count, len(clipped), len(p.Clients))
	}
	for i := range a.sum {
		a.sum[i] += p.sum.value(i)
	}
	for i, c := range p.Clients {
		v := Verdict{Client: c}
		if clipped[i] {
			a.clipped++
			v.Reason = fmt.Sprintf("clipped to norm %.4g at the edge shard", a.clip)
		} else {
			a.below++
		}
		a.verdicts = append(a.verdicts, v)
	}
	return nil
}

// WriteTo writes the partial in MarshalBinary's format to w, a block of
// coordinates at a time, and returns the bytes written.
func (p *Partial) WriteTo(w io.Writer) (int64, error) {
	if p.Weighted() {
		return 0, errWeightedPartial
	}
	for _, c := range p.Clients {
		if len(c) > maxClientName {
			return 0, fmt.Errorf("fl: client name of %d bytes; limit %d", len(c), maxClientName)
		}
	}
	n := p.Len()
	var total int64
	put := func(b []byte) error {
		k, err := w.Write(b)
		total += int64(k)
		return err
	}
	b := make([]byte, partialHeaderSize, max(partialHeaderSize, 8*blockSize))
	copy(b, partialMagic)
	b[4] = partialVersion
	binary.LittleEndian.PutUint32(b[5:], uint32(n))
	binary.LittleEndian.PutUint32(b[9:], uint32(p.Count))
	binary.LittleEndian.PutUint64(b[13:], uint64(p.Weight))
	binary.LittleEndian.PutUint64(b[21:], math.Float64bits(p.NormSum))
	if err := put(b); err != nil {
		return total, err
	}
	for _, high := range []bool{true, false} {
		for lo := 0; lo < n; lo += blockSize {
			b = b[:0]
			for i := lo; i < min(n, lo+blockSize); i++ {
				h, l := p.sum.normal(i)
				if !high {
					h = l
				}
				b = binary.LittleEndian.AppendUint64(b, uint64(h))
			}
			if err := put(b); err != nil {
				return total, err
			}
		}
	}
	b = b[:0]
	for _, c := range p.Clients {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	return total, put(b)
}

// PartialSize returns the size of a partial's encoding for a model of n
// parameters whose count clients have names of nameBytes bytes in all.
func PartialSize(n, count, nameBytes int) int { return partialHeaderSize + 16*n + 2*count + nameBytes }

// MaxPartialSize returns the largest encoding UnmarshalPartial accepts for
// a model of n parameters and count updates.
func MaxPartialSize(n, count int) int { return PartialSize(n, count, count*maxClientName) }

// Reset empties p for reuse, keeping its memory (16 bytes a parameter: a
// shard of a large model folds round after round into one partial).
func (p *Partial) Reset() {
	clear(p.sum.a)
	clear(p.sum.b)
	p.Weight, p.Count, p.NormSum = 0, 0, 0
	p.wsum = exactSum{}
	clear(p.Clients)
	p.Clients = p.Clients[:0]
}
