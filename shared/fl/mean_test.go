package fl_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/fltest"
)

func TestFedAvgWeightedMean(t *testing.T) {
	global := []float32{1, -2, 0.5}
	ups := []fl.Update{
		{Client: "a", Samples: 1, Delta: []float32{1, 0, -1}},
		{Client: "b", Samples: 3, Delta: []float32{-1, 4, 1}},
	}
	want := []float32{1 + (1-3)/4.0, -2 + 12/4.0, 0.5 + (-1+3)/4.0}
	got, res := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, fltest.Round{Global: global, Updates: ups})
	if !slices.Equal(got, want) {
		t.Errorf("fedavg(%v) = %v; want %v", ups, got, want)
	}
	if res.Used != 2 || res.Metrics["weight"] != 4 {
		t.Errorf("fedavg: Used = %d, weight = %v; want 2, 4", res.Used, res.Metrics["weight"])
	}
}

// TestFedAvgServerLR: with eta the step is eta times the weighted mean delta,
// and eta 1 is plain FedAvg.
func TestFedAvgServerLR(t *testing.T) {
	global := []float32{1, -2, 0.5}
	ups := []fl.Update{
		{Client: "a", Samples: 1, Delta: []float32{1, 0, -1}},
		{Client: "b", Samples: 3, Delta: []float32{-1, 4, 1}},
	}
	tests := []struct {
		spec string
		want []float32
	}{
		{"fedavg:1", []float32{0.5, 1, 1}},
		{"fedavg:2", []float32{0, 4, 1.5}},
		{"fedprox:0.1,eta=0.5", []float32{0.75, -0.5, 0.75}},
	}
	for _, tt := range tests {
		got, _ := fltest.Aggregate(t, mustParse(t, tt.spec), 1, fltest.Round{Global: global, Updates: ups})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s(%v) = %v; want %v", tt.spec, ups, got, tt.want)
		}
	}
}

// TestFedAvgOrderIndependent is the DESIGN.md claim at the size the spec
// names: 50 updates of 10k parameters, many permutations, bit-identical.
func TestFedAvgOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(100, 1))
	_, r := fltest.Honest(rng, 50, 10000, 0.003, 1.5)
	want, _ := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, r)
	for p := range 10 {
		q := r
		q.Updates = slices.Clone(r.Updates)
		rng.Shuffle(len(q.Updates), func(i, j int) { q.Updates[i], q.Updates[j] = q.Updates[j], q.Updates[i] })
		got, _ := fltest.Aggregate(t, mustParse(t, "fedavg"), 1, q)
		if !slices.Equal(got, want) {
			t.Fatalf("fedavg: permutation %d is not bit-identical", p)
		}
	}
}

func TestFedProxConfigureFit(t *testing.T) {
	tests := []struct {
		spec string
		want float64
	}{
		{"fedprox", 0.01},
		{"fedprox:0.5", 0.5},
		{"fedprox,mu=1", 1},
		{"fedavg", 0.3}, // base Mu passes through
	}
	for _, tt := range tests {
		got := mustParse(t, tt.spec).ConfigureFit(4, fl.FitConfig{Epochs: 5, Batch: 10, LR: 0.1, Mu: 0.3})
		if got.Mu != tt.want || got.Epochs != 5 {
			t.Errorf("Parse(%q).ConfigureFit(...).Mu = %v; want %v", tt.spec, got.Mu, tt.want)
		}
	}
}

func TestProximalGrad(t *testing.T) {
	w := []float32{1, 2, 3}
	wg := []float32{0, 2, 5}
	grad := []float32{0.5, 0.5, 0.5}
	fl.ProximalGrad(grad, w, wg, 0.1)
	want := []float32{0.5 + 0.1, 0.5, 0.5 - 0.2}
	for i := range want {
		if math.Abs(float64(grad[i]-want[i])) > 1e-7 {
			t.Errorf("ProximalGrad: grad[%d] = %v; want %v", i, grad[i], want[i])
		}
	}
	if w[0] != 1 || wg[2] != 5 {
		t.Errorf("ProximalGrad modified w or wGlobal")
	}
	defer func() {
		if r := recover(); r == nil || !strings.HasPrefix(r.(string), "fl: ") {
			t.Errorf("ProximalGrad(length mismatch) recovered %v; want an fl: panic", r)
		}
	}()
	fl.ProximalGrad(grad, w[:2], wg, 0.1)
}

// TestServerOptimizers checks two rounds of each server optimizer against
// values worked out by hand from Reddi et al. (2021), Algorithm 2.
func TestServerOptimizers(t *testing.T) {
	tests := []struct {
		spec   string
		delta  float32
		round1 float64
		round2 float64
	}{
		// m=1, w=1; m=0.9+1, w=1+1.9.
		{"fedavgm", 1, 1, 2.9},
		{"fedavgm,eta=0.5,momentum=0.5", 1, 0.5, 0.5 + 0.5*1.5},
		// m=Δ=0.5, v=0.25: 0.1·0.5/0.5; v=0.5: 0.1·0.5/√0.5.
		{"fedadagrad", 0.5, 0.1, 0.1 + 0.1*0.5/math.Sqrt(0.5)},
		// m=0.01, v=1e-4: 0.1·0.01/(0.01+1e-3); m=0.019, v=1.99e-4.
		{"fedadam", 0.1, 0.1 * 0.01 / 0.011, 0.1*0.01/0.011 + 0.1*0.019/(math.Sqrt(1.99e-4)+1e-3)},
		// Yogi: v=1e-4 then 2e-4 (v < Δ² both times).
		{"fedyogi", 0.1, 0.01 * 0.01 / 0.011, 0.01*0.01/0.011 + 0.01*0.019/(math.Sqrt(2e-4)+1e-3)},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.spec)
		r := fltest.Round{Global: []float32{0}, Updates: []fl.Update{{Client: "a", Samples: 3, Delta: []float32{tt.delta}}}}
		w1, _ := fltest.Aggregate(t, s, 1, r)
		r.Global = w1
		w2, res := fltest.Aggregate(t, s, 2, r)
		if !near(float64(w1[0]), tt.round1, 1e-5) || !near(float64(w2[0]), tt.round2, 1e-5) {
			t.Errorf("%s: rounds give %v, %v; want %v, %v", tt.spec, w1[0], w2[0], tt.round1, tt.round2)
		}
		if res.Metrics["server_steps"] != 2 {
			t.Errorf("%s: server_steps = %v; want 2", tt.spec, res.Metrics["server_steps"])
		}
	}
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

func TestServerOptimizerStateValidation(t *testing.T) {
	s := mustParse(t, "fedadam")
	_, r := fltest.Honest(rand.New(rand.NewPCG(1, 1)), 3, 4, 0.1, 1)
	fltest.Aggregate(t, s, 1, r)
	st, _ := fl.StateOf(s)
	good, err := st.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	putF32 := func(b []byte, off int, v float32) {
		u := math.Float32bits(v)
		b[off], b[off+1], b[off+2], b[off+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	tests := []struct {
		name string
		blob []byte
		want string
	}{
		{"magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), "bad header"},
		{"version", mut(func(b []byte) []byte { b[4] = 9; return b }), "version"},
		{"kind", mut(func(b []byte) []byte { b[5] = 3; return b }), "state is for fedyogi"},
		{"huge n", mut(func(b []byte) []byte { b[21] = 0x7f; return b }), "limit"},
		{"short", good[:len(good)-4], "bytes"},
		{"nan m", mut(func(b []byte) []byte { putF32(b, 22, float32(math.NaN())); return b }), "first moment"},
		{"negative v", mut(func(b []byte) []byte { putF32(b, 22+16, -1); return b }), "second moment"},
	}
	for _, tt := range tests {
		err := st.UnmarshalState(tt.blob)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("UnmarshalState(%s) = %v; want error containing %q", tt.name, err, tt.want)
		}
	}
	if after, _ := st.MarshalState(); !slices.Equal(after, good) {
		t.Errorf("failed UnmarshalState calls changed the state")
	}
	// Other optimizers' state is refused by name.
	y, _ := fl.StateOf(mustParse(t, "fedyogi"))
	if err := y.UnmarshalState(good); err == nil || !strings.Contains(err.Error(), "fedadam") {
		t.Errorf("fedyogi UnmarshalState(fedadam state) = %v; want an error naming fedadam", err)
	}
	// State of another model size makes the next Finish fail, not panic.
	_, big := fltest.Honest(rand.New(rand.NewPCG(2, 2)), 3, 5, 0.1, 1)
	agg := s.Begin(2, big.Global)
	for _, u := range big.Updates {
		if err := agg.Add(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := agg.Finish(context.Background(), make([]float32, 5)); err == nil || errors.Is(err, fl.ErrNoUpdates) {
		t.Errorf("Finish with 4-parameter state on a 5-parameter model = %v; want a size error", err)
	}
}
