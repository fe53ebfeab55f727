package adversary_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/adversary"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in    string
		str   string
		delta []float32 // Apply to {1, -2}; nil for gaussian
	}{
		{"", "none", []float32{1, -2}},
		{"none", "none", []float32{1, -2}},
		{"sign-flip", "sign-flip:10", []float32{-10, 20}},
		{"sign-flip:1", "sign-flip:1", []float32{-1, 2}},
		{"sign-flip:5", "sign-flip:5", []float32{-5, 10}},
		{"scale:10", "scale:10", []float32{10, -20}},
		{"scale:-0.5", "scale:-0.5", []float32{-0.5, 1}},
		{"label-flip", "label-flip", []float32{1, -2}},
		{"Gaussian", "gaussian", nil},
		{"gaussian:0.3", "gaussian:0.3", nil},
	}
	for _, tt := range tests {
		a, err := adversary.Parse(tt.in)
		if err != nil || a.String() != tt.str {
			t.Errorf("Parse(%q) = %q, %v; want %q, nil", tt.in, a, err, tt.str)
			continue
		}
		if b, err := adversary.Parse(a.String()); err != nil || b != a {
			t.Errorf("Parse(%q.String()) = %v, %v; want the same attack", tt.in, b, err)
		}
		if tt.delta == nil {
			continue
		}
		d := []float32{1, -2}
		a.Apply(d, nil)
		if d[0] != tt.delta[0] || d[1] != tt.delta[1] {
			t.Errorf("Parse(%q).Apply({1, -2}) = %v; want %v", tt.in, d, tt.delta)
		}
	}
	for _, bad := range []string{"flip", "scale", "scale:x", "sign-flip:-1", "gaussian:-1", "none:3", "label-flip:2", "scale:1e9", strings.Repeat("x", 100)} {
		if _, err := adversary.Parse(bad); err == nil || !strings.HasPrefix(err.Error(), "adversary: ") {
			t.Errorf("Parse(%q) = %v; want an adversary: error", bad, err)
		}
	}
}

func TestGaussianAttack(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	tests := []struct {
		spec string
		want float64 // std of the result
	}{
		{"gaussian", 100 * 0.5}, // 100× the honest RMS
		{"gaussian:0.2", 0.2},
	}
	for _, tt := range tests {
		a, _ := adversary.Parse(tt.spec)
		d := make([]float32, 100000)
		for i := range d {
			d[i] = 0.5
			if i%2 == 1 {
				d[i] = -0.5
			}
		}
		a.Apply(d, rng)
		var s2 float64
		for _, v := range d {
			s2 += float64(v) * float64(v)
		}
		if std := math.Sqrt(s2 / float64(len(d))); math.Abs(std-tt.want) > 0.02*tt.want {
			t.Errorf("%s: std = %v; want %v", tt.spec, std, tt.want)
		}
	}
}

func TestFlipLabel(t *testing.T) {
	flip, _ := adversary.Parse("label-flip")
	none, _ := adversary.Parse("sign-flip")
	tests := []struct {
		a       adversary.Attack
		y, want uint8
	}{
		{flip, 0, 9}, {flip, 9, 0}, {flip, 3, 6}, {none, 3, 3},
	}
	for _, tt := range tests {
		if got := tt.a.FlipLabel(tt.y, 10); got != tt.want {
			t.Errorf("%v.FlipLabel(%d, 10) = %d; want %d", tt.a, tt.y, got, tt.want)
		}
	}
}

func TestChoose(t *testing.T) {
	tests := []struct {
		total    int
		fraction float64
		want     int
	}{
		{10, 0.2, 2}, {100, 0.25, 25}, {7, 0.5, 4}, {5, 0, 0}, {5, 1, 5}, {0, 0.3, 0},
	}
	for _, tt := range tests {
		a, err := adversary.Choose(tt.total, tt.fraction, 9)
		b, _ := adversary.Choose(tt.total, tt.fraction, 9)
		n := 0
		for i, v := range a {
			if v {
				n++
			}
			if b[i] != v {
				t.Errorf("Choose(%d, %v, 9) is not deterministic", tt.total, tt.fraction)
			}
		}
		if err != nil || n != tt.want || len(a) != tt.total {
			t.Errorf("Choose(%d, %v, 9) selects %d of %d, %v; want %d", tt.total, tt.fraction, n, len(a), err, tt.want)
		}
	}
	c, _ := adversary.Choose(100, 0.2, 10)
	d, _ := adversary.Choose(100, 0.2, 9)
	if slicesEqual(c, d) {
		t.Errorf("Attackers with seeds 9 and 10 select the same clients")
	}
	for _, f := range []float64{-0.1, 1.1, math.NaN()} {
		if _, err := adversary.Choose(10, f, 1); err == nil {
			t.Errorf("Attackers(10, %v, 1) = nil error; want an error", f)
		}
	}
}

func slicesEqual(a, b []bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}
