package profile

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestBuiltinsAreValid(t *testing.T) {
	want := []string{"desktop", "laptop", "phone-high", "phone-low", "iot"}
	all := All()
	if len(all) != len(want) {
		t.Fatalf("All() has %d profiles; want %d", len(all), len(want))
	}
	for i, p := range all {
		if p.Name != want[i] {
			t.Errorf("All()[%d] = %s; want %s", i, p.Name, want[i])
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v", p.Name, err)
		}
		if p.Source == "" {
			t.Errorf("%s: no Source", p.Name)
		}
		if i > 0 && p.TrainGFLOPS > all[i-1].TrainGFLOPS {
			t.Errorf("%s (%g GFLOPS) is faster than %s before it; want fastest first", p.Name, p.TrainGFLOPS, all[i-1].Name)
		}
	}
	all[0].Name = "changed"
	if All()[0].Name != "desktop" {
		t.Error("changing All()'s result changed the built-in profiles")
	}
}

// TestPhoneLowIsFiveTimesSlower: the heterogeneity study's population says
// phone-low is 5x slower than laptop.
func TestPhoneLowIsFiveTimesSlower(t *testing.T) {
	low, _ := Lookup("phone-low")
	lap, _ := Lookup("laptop")
	const flops = 7.1568e8 // one epoch of mnist-2nn on 600 samples
	if got, want := low.Compute(flops), 5*lap.Compute(flops); absDiff(got, want) > time.Microsecond {
		t.Errorf("phone-low Compute = %v; want 5 x laptop's %v = %v", got, lap.Compute(flops), want)
	}
}

func TestLookup(t *testing.T) {
	p, err := Lookup("laptop")
	if err != nil || p.Name != "laptop" || p.TrainGFLOPS != 13 {
		t.Errorf("Lookup(laptop) = %+v, %v; want the laptop at 13 GFLOPS", p, err)
	}
	_, err = Lookup("phone-mid")
	if !errors.Is(err, ErrUnknown) {
		t.Fatalf("Lookup(phone-mid) = %v; want ErrUnknown", err)
	}
	for _, name := range Names() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Lookup(phone-mid) error %q does not list %s", err, name)
		}
	}
}

func TestTimeMaths(t *testing.T) {
	p := Profile{Name: "test", TrainGFLOPS: 2, DownMbps: 8, UpMbps: 4, RTT: 40 * time.Millisecond}
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"Compute(4e9)", p.Compute(4e9), 2 * time.Second},
		{"Compute(0)", p.Compute(0), 0},
		{"Compute(-1)", p.Compute(-1), 0},
		{"Compute(NaN)", p.Compute(math.NaN()), 0},
		{"Compute(1e30)", p.Compute(1e30), math.MaxInt64},
		// 1 MB = 8 Mbit: 1 s at 8 Mbps, 2 s at 4 Mbps, plus 20 ms.
		{"Download(1e6)", p.Download(1_000_000), time.Second + 20*time.Millisecond},
		{"Upload(1e6)", p.Upload(1_000_000), 2*time.Second + 20*time.Millisecond},
		{"Upload(0)", p.Upload(0), 20 * time.Millisecond},
		{"zero profile Compute", Profile{}.Compute(1e9), 0},
		{"zero profile Upload", Profile{}.Upload(1e6), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v; want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Profile{Name: "x", TrainGFLOPS: 1, DownMbps: 1, UpMbps: 1}
	tests := []struct {
		name string
		edit func(*Profile)
		want string // "" = valid
	}{
		{"minimal", func(*Profile) {}, ""},
		{"with periods", func(p *Profile) { p.OnlineMean, p.OfflineMean = time.Minute, time.Minute }, ""},
		{"online only", func(p *Profile) { p.OnlineMean = time.Minute }, ""},
		{"bad name", func(p *Profile) { p.Name = "Phone" }, "want [a-z0-9-]"},
		{"no name", func(p *Profile) { p.Name = "" }, "1..32"},
		{"no speed", func(p *Profile) { p.TrainGFLOPS = 0 }, "positive"},
		{"infinite", func(p *Profile) { p.UpMbps = math.Inf(1) }, "finite"},
		{"NaN", func(p *Profile) { p.DownMbps = math.NaN() }, "positive"},
		{"negative RTT", func(p *Profile) { p.RTT = -1 }, "negative"},
		{"offline without online", func(p *Profile) { p.OfflineMean = time.Minute }, "needs an online mean"},
		{"drop > 1", func(p *Profile) { p.DropProb = 1.5 }, "[0, 1]"},
		{"drop NaN", func(p *Profile) { p.DropProb = math.NaN() }, "[0, 1]"},
	}
	for _, tt := range tests {
		p := ok
		tt.edit(&p)
		err := p.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Validate() = %v; want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: Validate() = %v; want an error with %q", tt.name, err, tt.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, s := range []string{"laptop", "phone-low", "a", "x2", strings.Repeat("a", 32)} {
		if err := CheckName(s); err != nil {
			t.Errorf("CheckName(%q) = %v; want nil", s, err)
		}
	}
	for _, s := range []string{"", "Laptop", "phone_low", "phone low", "é", strings.Repeat("a", 33)} {
		if err := CheckName(s); err == nil {
			t.Errorf("CheckName(%q) = nil; want an error", s)
		}
	}
}

// TestAvailability draws many periods and drops from a fixed seed and
// checks their means and rates (deterministic: the seed fixes the draws).
func TestAvailability(t *testing.T) {
	p := Profile{Name: "x", TrainGFLOPS: 1, DownMbps: 1, UpMbps: 1, OnlineMean: 10 * time.Minute, OfflineMean: 2 * time.Minute, DropProb: 0.1}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	var on, off time.Duration
	drops := 0
	for range n {
		on += p.OnlinePeriod(r)
		off += p.OfflinePeriod(r)
		if at, ok := p.Drop(r); ok {
			drops++
			if at < 0 || at >= 1 {
				t.Fatalf("Drop fraction %g; want [0, 1)", at)
			}
		}
	}
	if m := on / n; absDiff(m, p.OnlineMean) > p.OnlineMean/20 {
		t.Errorf("mean online period %v; want about %v", m, p.OnlineMean)
	}
	if m := off / n; absDiff(m, p.OfflineMean) > p.OfflineMean/20 {
		t.Errorf("mean offline period %v; want about %v", m, p.OfflineMean)
	}
	if rate := float64(drops) / n; math.Abs(rate-0.1) > 0.01 {
		t.Errorf("drop rate %g; want about 0.1", rate)
	}
}

func TestAlwaysOnlineDrawsNothing(t *testing.T) {
	lap, _ := Lookup("laptop")
	r := rand.New(rand.NewPCG(1, 2))
	ref := rand.New(rand.NewPCG(1, 2))
	if !lap.AlwaysOnline() || lap.OnlinePeriod(r) != 0 || lap.OfflinePeriod(r) != 0 {
		t.Error("laptop: want always online with no periods")
	}
	if _, ok := lap.Drop(r); ok {
		t.Error("laptop dropped a task; its drop chance is 0")
	}
	if r.Uint64() != ref.Uint64() {
		t.Error("an always-online profile without drops drew from the random source")
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}
