package privacy

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// within reports whether got is within rel (relative) of want.
func within(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// TestEpsilonPublished reproduces published (epsilon, delta) figures.
func TestEpsilonPublished(t *testing.T) {
	tests := []struct {
		name   string
		q      float64
		sigma  float64
		steps  int
		orders []float64
		conv   Conversion
		want   float64
	}{
		// TensorFlow Privacy MNIST tutorial table: N=60000, batch 256,
		// 234 steps per epoch, delta=1e-5, classic conversion.
		{"tutorial sigma=1.1 60 epochs", 256.0 / 60000, 1.1, 60 * 234, TutorialOrders(), Classic, 3.01},
		{"tutorial sigma=1.3 15 epochs", 256.0 / 60000, 1.3, 15 * 234, TutorialOrders(), Classic, 1.19},
		{"tutorial sigma=0.7 45 epochs", 256.0 / 60000, 0.7, 45 * 234, TutorialOrders(), Classic, 7.10},
		// compute_dp_sgd_privacy test: N=60000, B=150, sigma=1.3, 15 epochs.
		{"compute_dp_sgd_privacy improved", 150.0 / 60000, 1.3, 6000, DefaultOrders(), Improved, 0.72422},
		{"compute_dp_sgd_privacy classic", 150.0 / 60000, 1.3, 6000, DefaultOrders(), Classic, 0.94187},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdp := RDP(tt.q, tt.sigma, tt.steps, tt.orders)
			eps, order := Epsilon(tt.orders, rdp, 1e-5, tt.conv)
			t.Logf("eps = %.5f at order %v (published %v)", eps, order, tt.want)
			if !within(eps, tt.want, 0.01) {
				t.Errorf("Epsilon(RDP(%v, %v, %d), 1e-5, %v) = %v; want %v within 1%%",
					tt.q, tt.sigma, tt.steps, tt.conv, eps, tt.want)
			}
		})
	}
}

// TestRDPPublished checks RDP values from TF Privacy's rdp_accountant_test
// (q=0.01, sigma=2.5, 50 steps) and the closed form for q=1.
func TestRDPPublished(t *testing.T) {
	tests := []struct {
		q, sigma float64
		steps    int
		order    float64
		want     float64
		rel      float64
	}{
		{0.01, 2.5, 50, 1.5, 0.00065, 1e-3}, // published to 2 digits
		{0.01, 2.5, 50, 2.5, 1.08549e-3, 1e-4},
		{0.01, 2.5, 50, 5, 2.18076e-3, 1e-5},
		{0.01, 2.5, 50, 50, 2.38460e-2, 1e-5},
		{0.01, 2.5, 50, 100, 167.416307, 1e-6},
		{1, 2, 1, 3, 3.0 / 8, 1e-15},
		{1, 1.5, 10, 32, 10 * 32 / (2 * 2.25), 1e-15},
		{0, 1, 100, 8, 0, 0},
		{0.3, 1, 0, 8, 0, 0},
	}
	for _, tt := range tests {
		got := RDP(tt.q, tt.sigma, tt.steps, []float64{tt.order})[0]
		if !within(got, tt.want, tt.rel) {
			t.Errorf("RDP(%v, %v, %d, %v) = %.6g; want %.6g", tt.q, tt.sigma, tt.steps, tt.order, got, tt.want)
		}
	}
}

// TestRDPEdgeCases covers infinite orders, zero noise and the limits of the
// sampled mechanism.
func TestRDPEdgeCases(t *testing.T) {
	if got := RDP(0.01, 2.5, 1, []float64{math.Inf(1)})[0]; !math.IsInf(got, 1) {
		t.Errorf("RDP(0.01, 2.5, 1, +Inf) = %v; want +Inf", got)
	}
	if got := RDP(0.5, 0, 1, []float64{2})[0]; !math.IsInf(got, 1) {
		t.Errorf("RDP(0.5, 0, 1, 2) = %v; want +Inf", got)
	}
	// Subsampling amplifies privacy: RDP grows with q and never exceeds q=1.
	orders := DefaultOrders()
	prev := RDP(0.001, 1.1, 1, orders)
	for _, q := range []float64{0.01, 0.1, 0.5, 0.9, 1} {
		cur := RDP(q, 1.1, 1, orders)
		for i, a := range orders {
			if !(cur[i] >= prev[i]) || math.IsNaN(cur[i]) {
				t.Errorf("RDP(%v, 1.1, 1, %v) = %v; want >= %v (value at smaller q)", q, a, cur[i], prev[i])
			}
		}
		prev = cur
	}
	// Large orders with little noise stay finite (log-space evaluation).
	for _, r := range RDP(0.5, 0.5, 1000, []float64{512, 300.5}) {
		if math.IsInf(r, 0) || math.IsNaN(r) || r <= 0 {
			t.Errorf("RDP(0.5, 0.5, 1000, large order) = %v; want finite positive", r)
		}
	}
}

// TestRDPFractionalMatchesNeighbours checks that fractional orders interpolate
// between their integer neighbours (RDP is non-decreasing in the order).
func TestRDPFractionalMatchesNeighbours(t *testing.T) {
	for _, q := range []float64{0.001, 0.02, 0.3} {
		for _, sigma := range []float64{0.7, 1.3, 4} {
			r := RDP(q, sigma, 1, []float64{3, 3.5, 4, 9, 9.25, 10})
			if !(r[0] <= r[1] && r[1] <= r[2] && r[3] <= r[4] && r[4] <= r[5]) {
				t.Errorf("RDP(%v, %v, 1, [3 3.5 4 9 9.25 10]) = %v; want non-decreasing", q, sigma, r)
			}
		}
	}
}

func TestEpsilonConversions(t *testing.T) {
	orders := DefaultOrders()
	rdp := RDP(0.01, 1.0, 1000, orders)
	classic, _ := Epsilon(orders, rdp, 1e-5, Classic)
	improved, _ := Epsilon(orders, rdp, 1e-5, Improved)
	if !(improved <= classic) {
		t.Errorf("Epsilon(Improved) = %v; want <= Epsilon(Classic) = %v", improved, classic)
	}
	// Zero RDP costs nothing.
	zero := make([]float64, len(orders))
	if e, _ := Epsilon(orders, zero, 1e-5, Improved); e != 0 {
		t.Errorf("Epsilon(zero RDP, Improved) = %v; want 0", e)
	}
	// Infinite RDP everywhere gives +Inf.
	inf := RDP(1, 0, 1, orders)
	if e, _ := Epsilon(orders, inf, 1e-5, Classic); !math.IsInf(e, 1) {
		t.Errorf("Epsilon(+Inf RDP, Classic) = %v; want +Inf", e)
	}
	if Improved.String() != "improved" || Classic.String() != "classic" {
		t.Errorf("Conversion strings = %q, %q; want improved, classic", Improved, Classic)
	}
}

func TestPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"q>1", func() { RDP(1.5, 1, 1, []float64{2}) }},
		{"order 1", func() { RDP(0.1, 1, 1, []float64{1}) }},
		{"negative steps", func() { RDP(0.1, 1, -1, []float64{2}) }},
		{"length mismatch", func() { Epsilon([]float64{2, 3}, []float64{1}, 1e-5, Classic) }},
		{"delta 0", func() { Epsilon([]float64{2}, []float64{1}, 0, Classic) }},
		{"bad conversion", func() { Epsilon([]float64{2}, []float64{1}, 1e-5, Conversion(7)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.HasPrefix(fmt.Sprint(r), "privacy: ") {
					t.Errorf("%s: recovered %v; want a panic starting with \"privacy: \"", tt.name, r)
				}
			}()
			tt.f()
		})
	}
}
