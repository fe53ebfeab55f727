package fl

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// optKind selects a server optimizer.
type optKind uint8

const (
	optMomentum optKind = 1 + iota // FedAvgM
	optAdam                        // FedAdam
	optYogi                        // FedYogi
	optAdagrad                     // FedAdagrad
)

var optNames = map[optKind]string{
	optMomentum: "fedavgm", optAdam: "fedadam", optYogi: "fedyogi", optAdagrad: "fedadagrad",
}

// MaxStateParams bounds the model size a marshalled optimizer state may
// declare, checked before anything is allocated.
const MaxStateParams = 1 << 28

// serverOpt applies a server optimizer to the round's averaged delta, which it
// treats as a pseudo-gradient pointing downhill (Reddi et al. 2021, Algorithm
// 2, with Delta = average of w_client − w_global):
//
//	FedAvgM:    m ← β·m + Δ;                       w ← w + η·m   (Hsu et al. 2019)
//	FedAdagrad: m ← β1·m + (1−β1)·Δ; v ← v + Δ²;   w ← w + η·m/(√v + τ)
//	FedAdam:    m as above; v ← β2·v + (1−β2)·Δ²;  w ← w + η·m/(√v + τ)
//	FedYogi:    m as above; v ← v − (1−β2)·Δ²·sign(v − Δ²); w as FedAdam
//
// m and v start at zero and are stored in float32; each coordinate is
// computed in float64. There is no bias correction, as in the paper.
type serverOpt struct {
	kind                   optKind
	eta, beta1, beta2, tau float64 // beta1 is the momentum β for FedAvgM

	mu    sync.Mutex
	steps uint64
	m, v  []float32
}

// Name returns the strategy's name.
func (s *serverOpt) Name() string { return optNames[s.kind] }

// ConfigureFit returns base unchanged.
func (s *serverOpt) ConfigureFit(_ int, base FitConfig) FitConfig { return base }

// Begin starts a streaming weighted average whose result feeds the optimizer.
func (s *serverOpt) Begin(_ int, global []float32) Aggregation { return newMeanAgg(s, global) }

func (s *serverOpt) step(global []float32, avg []float64, dst []float32) (map[string]float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(avg)
	switch {
	case s.m == nil:
		s.m = make([]float32, n)
		if s.kind != optMomentum {
			s.v = make([]float32, n)
		}
	case len(s.m) != n:
		return nil, fmt.Errorf("fl: %s state has %d parameters, model has %d", s.Name(), len(s.m), n)
	}
	switch s.kind {
	case optMomentum:
		for i, d := range avg {
			m := s.beta1*float64(s.m[i]) + d
			s.m[i] = float32(m)
			dst[i] = float32(float64(global[i]) + s.eta*m)
		}
	default:
		s.adaptiveStep(global, avg, dst)
	}
	s.steps++
	return map[string]float64{"server_lr": s.eta, "server_steps": float64(s.steps)}, nil
}

func (s *serverOpt) adaptiveStep(global []float32, avg []float64, dst []float32) {
	b1, b2 := s.beta1, s.beta2
	for i, d := range avg {
		m := b1*float64(s.m[i]) + (1-b1)*d
		v, d2 := float64(s.v[i]), d*d
		switch s.kind {
		case optAdagrad:
			v += d2
		case optAdam:
			v = b2*v + (1-b2)*d2
		case optYogi:
			switch {
			case v > d2:
				v -= (1 - b2) * d2
			case v < d2:
				v += (1 - b2) * d2
			}
		}
		s.m[i], s.v[i] = float32(m), float32(v)
		dst[i] = float32(float64(global[i]) + s.eta*m/(math.Sqrt(float64(s.v[i]))+s.tau))
	}
}

// State layout: magic "QFLo", version, kind, steps (uint64), n (uint64), then
// m and (except FedAvgM) v as n little-endian float32s each.
const (
	optMagic      = "QFLo"
	optVersion    = 1
	optHeaderSize = 4 + 1 + 1 + 8 + 8
)

// MarshalState encodes the optimizer's step count and moments.
func (s *serverOpt) MarshalState() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.m)
	b := make([]byte, optHeaderSize, optHeaderSize+4*n*s.vectors())
	copy(b, optMagic)
	b[4], b[5] = optVersion, byte(s.kind)
	binary.LittleEndian.PutUint64(b[6:], s.steps)
	binary.LittleEndian.PutUint64(b[14:], uint64(n))
	b = appendFloat32s(b, s.m)
	if s.kind != optMomentum {
		b = appendFloat32s(b, s.v)
	}
	return b, nil
}

// UnmarshalState restores a state written by MarshalState of the same
// strategy. It checks the header, the declared size against MaxStateParams and
// the data length before allocating, and rejects non-finite moments and
// negative second moments.
func (s *serverOpt) UnmarshalState(b []byte) error {
	if len(b) < optHeaderSize || string(b[:4]) != optMagic {
		return fmt.Errorf("fl: %s state: bad header", s.Name())
	}
	if b[4] != optVersion {
		return fmt.Errorf("fl: %s state: unsupported version %d", s.Name(), b[4])
	}
	if k := optKind(b[5]); k != s.kind {
		name, ok := optNames[k]
		if !ok {
			name = fmt.Sprintf("unknown optimizer %d", k)
		}
		return fmt.Errorf("fl: state is for %s, strategy is %s", name, s.Name())
	}
	steps := binary.LittleEndian.Uint64(b[6:])
	n64 := binary.LittleEndian.Uint64(b[14:])
	if n64 > MaxStateParams {
		return fmt.Errorf("fl: %s state declares %d parameters, limit %d", s.Name(), n64, MaxStateParams)
	}
	n := int(n64)
	if want := optHeaderSize + 4*n*s.vectors(); len(b) != want {
		return fmt.Errorf("fl: %s state has %d bytes, want %d for %d parameters", s.Name(), len(b), want, n)
	}
	m, err := readFloat32s(b[optHeaderSize:], n, false)
	if err != nil {
		return fmt.Errorf("fl: %s state: first moment: %w", s.Name(), err)
	}
	var v []float32
	if s.kind != optMomentum {
		if v, err = readFloat32s(b[optHeaderSize+4*n:], n, true); err != nil {
			return fmt.Errorf("fl: %s state: second moment: %w", s.Name(), err)
		}
	}
	if n == 0 {
		m, v = nil, nil
	}
	s.mu.Lock()
	s.steps, s.m, s.v = steps, m, v
	s.mu.Unlock()
	return nil
}

// vectors is the number of state vectors of the optimizer.
func (s *serverOpt) vectors() int {
	if s.kind == optMomentum {
		return 1
	}
	return 2
}

func appendFloat32s(b []byte, x []float32) []byte {
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// readFloat32s decodes n little-endian float32s from b (len(b) ≥ 4n),
// rejecting non-finite values and, if nonNeg, negative ones.
func readFloat32s(b []byte, n int, nonNeg bool) ([]float32, error) {
	x := make([]float32, n)
	for i := range x {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || nonNeg && v < 0 {
			return nil, fmt.Errorf("invalid value %v at index %d", v, i)
		}
		x[i] = v
	}
	return x, nil
}
