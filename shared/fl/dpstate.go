package fl

import (
	"encoding/binary"
	"fmt"
	"math"
	mrand "math/rand/v2"
)

// DP state layout, little-endian: magic "QFLd", version (1 byte), clip norm
// (float64), rounds (uint64), order count n (uint32), n orders and n RDP values
// (float64 each), generator state length (uint16) and bytes, inner state
// length (uint64) and bytes (0 when the inner strategy has no state).
const (
	dpMagic     = "QFLd"
	dpVersion   = 1
	maxDPOrders = 4096
	maxRNGState = 64
)

// MarshalState encodes the clip norm, the privacy spent, the noise
// generator's state and the inner strategy's state.
func (d *DP) MarshalState() ([]byte, error) {
	var inner []byte
	if st, ok := Strategy(d.inner).(Stateful); ok {
		var err error
		if inner, err = st.MarshalState(); err != nil {
			return nil, err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rng, err := d.src.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("fl: dp state: %w", err)
	}
	b := []byte(dpMagic)
	b = append(b, dpVersion)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.clip))
	b = binary.LittleEndian.AppendUint64(b, d.rounds)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.orders)))
	for _, x := range d.orders {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	for _, x := range d.rdp {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(rng)))
	b = append(b, rng...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(inner)))
	return append(b, inner...), nil
}

// UnmarshalState restores a state written by MarshalState. The orders must
// equal the configured ones. Every length is checked against the input before
// use, and the strategy is unchanged on error.
func (d *DP) UnmarshalState(b []byte) error {
	r := stateReader{b: b}
	if string(r.next(4)) != dpMagic {
		return fmt.Errorf("fl: dp state: bad header")
	}
	if v := r.next(1); v == nil || v[0] != dpVersion {
		return fmt.Errorf("fl: dp state: unsupported version")
	}
	clip := math.Float64frombits(r.u64())
	rounds := r.u64()
	n := int(r.u32())
	if r.err != nil || n > maxDPOrders || n*16 > len(r.b) {
		return fmt.Errorf("fl: dp state: truncated or oversized order list")
	}
	if n != len(d.orders) {
		return fmt.Errorf("fl: dp state has %d orders, configuration has %d", n, len(d.orders))
	}
	for i := range n {
		if o := math.Float64frombits(r.u64()); o != d.orders[i] {
			return fmt.Errorf("fl: dp state order %d is %v, configuration has %v", i, o, d.orders[i])
		}
	}
	rdp := make([]float64, n)
	for i := range rdp {
		rdp[i] = math.Float64frombits(r.u64())
		if !(rdp[i] >= 0) {
			return fmt.Errorf("fl: dp state: invalid RDP %v", rdp[i])
		}
	}
	if !(clip > 0) || math.IsInf(clip, 0) {
		return fmt.Errorf("fl: dp state: invalid clip norm %v", clip)
	}
	rl := int(r.u16())
	if rl > maxRNGState {
		return fmt.Errorf("fl: dp state: generator state of %d bytes exceeds %d", rl, maxRNGState)
	}
	src := new(mrand.PCG)
	if err := src.UnmarshalBinary(r.next(rl)); err != nil {
		return fmt.Errorf("fl: dp state: generator: %w", err)
	}
	il := r.u64()
	if r.err != nil || il != uint64(len(r.b)) {
		return fmt.Errorf("fl: dp state: inner state length %d does not match the %d bytes left", il, len(r.b))
	}
	if err := d.restoreInner(r.b); err != nil {
		return err
	}
	d.mu.Lock()
	d.clip, d.rounds, d.rdp = clip, rounds, rdp
	d.src, d.rng = src, mrand.New(src)
	d.mu.Unlock()
	return nil
}

func (d *DP) restoreInner(b []byte) error {
	st, ok := Strategy(d.inner).(Stateful)
	switch {
	case ok:
		return st.UnmarshalState(b)
	case len(b) > 0:
		return fmt.Errorf("fl: dp state carries %d bytes of inner state, but %s has none", len(b), d.inner.Name())
	}
	return nil
}

// stateReader consumes a byte slice, recording the first short read in err.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) next(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = fmt.Errorf("fl: state truncated")
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *stateReader) u64() uint64 {
	if p := r.next(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *stateReader) u32() uint32 {
	if p := r.next(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *stateReader) u16() uint16 {
	if p := r.next(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}
