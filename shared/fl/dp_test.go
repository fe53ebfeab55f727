package fl_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/fltest"
	"github.com/qflare/qflare/shared/fl/privacy"
)

func mustDP(t *testing.T, inner string, cfg fl.DPConfig) *fl.DP {
	t.Helper()
	d, err := fl.NewDP(mustParse(t, inner), cfg)
	if err != nil {
		t.Fatalf("NewDP(%s, %+v) = %v", inner, cfg, err)
	}
	return d
}

// TestDPClipAndFixedDenominator: without noise, DP is the sum of clipped
// deltas over ClientsPerRound, ignoring sample counts.
func TestDPClipAndFixedDenominator(t *testing.T) {
	d := mustDP(t, "fedavg", fl.DPConfig{ClipNorm: 1, ClientsPerRound: 4, TotalClients: 40, Seed: 1})
	ups := []fl.Update{
		{Client: "big", Samples: 1000, Delta: []float32{6, 8}}, // norm 10 → (0.6, 0.8)
		{Client: "small", Samples: 1, Delta: []float32{0.3, -0.4}},
	}
	got, res := fltest.Aggregate(t, d, 1, fltest.Round{Global: []float32{1, 1}, Updates: ups})
	want := []float64{1 + (0.6+0.3)/4, 1 + (0.8-0.4)/4}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-6 {
			t.Errorf("DP(no noise) = %v; want %v", got, want)
			break
		}
	}
	if !strings.HasPrefix(res.Verdicts[0].Reason, "clipped") || res.Verdicts[1].Reason != "" {
		t.Errorf("DP verdicts = %+v; want the first clipped, the second not", res.Verdicts)
	}
	if ups[0].Delta[0] != 6 {
		t.Errorf("DP modified its input")
	}
	if !math.IsInf(res.Epsilon, 1) || res.Delta != fl.DefaultDPDelta {
		t.Errorf("DP with z=0: Epsilon, Delta = %v, %v; want +Inf, %v", res.Epsilon, res.Delta, fl.DefaultDPDelta)
	}
}

// TestDPNoiseStd measures the added noise: std z·C/W per coordinate.
func TestDPNoiseStd(t *testing.T) {
	const n, z, c, w = 200000, 1.3, 2.0, 8
	d := mustDP(t, "fedavg", fl.DPConfig{ClipNorm: c, NoiseMultiplier: z, ClientsPerRound: w, TotalClients: 800, Seed: 99})
	r := fltest.Round{Global: make([]float32, n), Updates: []fl.Update{{Client: "zero", Samples: 1, Delta: make([]float32, n)}}}
	got, res := fltest.Aggregate(t, d, 1, r)
	var s2 float64
	for _, v := range got {
		s2 += float64(v) * float64(v)
	}
	std, want := math.Sqrt(s2/n), z*c/w
	if math.Abs(std-want) > 0.01*want || res.Metrics["dp_noise_std"] != want {
		t.Errorf("DP noise std = %v (metric %v); want %v", std, res.Metrics["dp_noise_std"], want)
	}
}

// TestDPAccounting: epsilon after each round is the accountant's for that
// many steps at q = ClientsPerRound/TotalClients.
func TestDPAccounting(t *testing.T) {
	cfg := fl.DPConfig{ClipNorm: 1, NoiseMultiplier: 1.1, ClientsPerRound: 10, TotalClients: 1000, Seed: 3, Conversion: privacy.Classic}
	d := mustDP(t, "fedavg", cfg)
	orders := privacy.DefaultOrders()
	_, r := fltest.Honest(rand.New(rand.NewPCG(1, 2)), 10, 50, 0.1, 1)
	prev := 0.0
	for round := 1; round <= 5; round++ {
		_, res := fltest.Aggregate(t, d, round, r)
		want, _ := privacy.Epsilon(orders, privacy.RDP(0.01, 1.1, round, orders), 1e-5, privacy.Classic)
		if !near(res.Epsilon, want, 1e-9) || !(res.Epsilon > prev) {
			t.Errorf("round %d: Epsilon = %v; want %v (and above %v)", round, res.Epsilon, want, prev)
		}
		prev = res.Epsilon
	}
	if eps, delta := d.Spent(); eps != prev || delta != 1e-5 {
		t.Errorf("Spent() = %v, %v; want %v, 1e-5", eps, delta, prev)
	}
}

// TestDPAdaptiveClipping: the clip norm moves toward the target quantile of
// the update norms (Andrew et al. 2021).
func TestDPAdaptiveClipping(t *testing.T) {
	cfg := fl.DPConfig{ClipNorm: 0.5, NoiseMultiplier: 0.5, ClientsPerRound: 20, TotalClients: 200,
		TargetQuantile: 0.5, Seed: 11}
	d := mustDP(t, "fedavg", cfg)
	rng := rand.New(rand.NewPCG(4, 4))
	for round := 1; round <= 60; round++ {
		r := fltest.Round{Global: make([]float32, 16)}
		for c := range 20 {
			// Norms 1..20 (× direction of unit norm): the median is ~10.5.
			delta := make([]float32, 16)
			delta[rng.IntN(16)] = float32(c + 1)
			r.Updates = append(r.Updates, fl.Update{Client: "c", Samples: 1, Delta: delta})
		}
		fltest.Aggregate(t, d, round, r)
	}
	if c := d.ClipNorm(); c < 6 || c > 16 {
		t.Errorf("adaptive clip norm after 60 rounds = %v; want near the median norm 10.5", c)
	}
	if m := d.Config(); m.ClipLR != 0.2 || m.CountStd != 1 {
		t.Errorf("defaults: ClipLR = %v, CountStd = %v; want 0.2, 1", m.ClipLR, m.CountStd)
	}
}

func TestDPConfigErrors(t *testing.T) {
	ok := fl.DPConfig{ClipNorm: 1, NoiseMultiplier: 1, ClientsPerRound: 10, TotalClients: 100}
	tests := []struct {
		name  string
		inner string
		edit  func(*fl.DPConfig)
		want  string
	}{
		{"robust inner", "median", func(*fl.DPConfig) {}, "averaging strategy"},
		{"clip", "fedavg", func(c *fl.DPConfig) { c.ClipNorm = 0 }, "clip norm"},
		{"noise", "fedavg", func(c *fl.DPConfig) { c.NoiseMultiplier = math.NaN() }, "noise multiplier"},
		{"cohort", "fedavg", func(c *fl.DPConfig) { c.ClientsPerRound = 0 }, "clients per round"},
		{"population", "fedavg", func(c *fl.DPConfig) { c.TotalClients = 5 }, "total clients"},
		{"delta", "fedavg", func(c *fl.DPConfig) { c.Delta = 1 }, "delta"},
		{"quantile", "fedavg", func(c *fl.DPConfig) { c.TargetQuantile = 1.5 }, "quantile"},
		{"order", "fedavg", func(c *fl.DPConfig) { c.Orders = []float64{0.5} }, "order"},
		{"count noise", "fedavg", func(c *fl.DPConfig) { c.TargetQuantile = 0.5 }, "count noise"}, // z=1, sigma_b=0.5
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		_, err := fl.NewDP(mustParse(t, tt.inner), c)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewDP(%s) = %v; want error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestDPStateMismatch(t *testing.T) {
	a := mustDP(t, "fedadam", fl.DPConfig{ClipNorm: 1, NoiseMultiplier: 1, ClientsPerRound: 5, TotalClients: 50, Seed: 1})
	blob, err := a.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	b := mustDP(t, "fedadam", fl.DPConfig{ClipNorm: 1, NoiseMultiplier: 1, ClientsPerRound: 5, TotalClients: 50,
		Orders: []float64{2, 4, 8}})
	if err := b.UnmarshalState(blob); err == nil || !strings.Contains(err.Error(), "orders") {
		t.Errorf("UnmarshalState(state with other orders) = %v; want an orders error", err)
	}
	c := mustDP(t, "fedavg", fl.DPConfig{ClipNorm: 1, NoiseMultiplier: 1, ClientsPerRound: 5, TotalClients: 50})
	if err := c.UnmarshalState(blob); err == nil || !strings.Contains(err.Error(), "inner state") {
		t.Errorf("fedavg+dp UnmarshalState(fedadam+dp state) = %v; want an inner state error", err)
	}
}
