package fl_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/privacy"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec string
		name string
		want fl.Options
	}{
		{"fedavg", "fedavg", fl.Options{}},
		{" FedAvg ", "fedavg", fl.Options{}},
		{"trimmed-mean:0.2", "trimmed-mean", fl.Options{TrimBeta: 0.2}},
		{"trimmed-mean,trim=0.1", "trimmed-mean", fl.Options{TrimBeta: 0.1}},
		{"multi-krum:2,m=5", "multi-krum", fl.Options{KrumF: 2, KrumM: 5}},
		{"krum:1", "krum", fl.Options{KrumF: 1}},
		{"fedprox:0.1", "fedprox", fl.Options{Mu: 0.1}},
		{"fedavg:2", "fedavg", fl.Options{ServerLR: 2}},
		{"fedprox:0.1,eta=1.5", "fedprox", fl.Options{Mu: 0.1, ServerLR: 1.5}},
		{"fedavgm:0.5,eta=0.7", "fedavgm", fl.Options{Momentum: 0.5, ServerLR: 0.7}},
		{"fedadam,eta=0.01,beta1=0.8,beta2=0.999,tau=1e-4", "fedadam", fl.Options{ServerLR: 0.01, Beta1: 0.8, Beta2: 0.999, Tau: 1e-4}},
		{"fedyogi:0.02", "fedyogi", fl.Options{ServerLR: 0.02}},
		{"median,detect", "median", fl.Options{Detect: true}},
		{"fedavg,detect=off", "fedavg", fl.Options{}},
		{"fedavg,detect=on,threshold=5", "fedavg", fl.Options{Detect: true, DetectThreshold: 5}},
		{"fedavg,dp-clip=1,dp-noise=1.1,dp-clients=10,dp-total=100,dp-delta=1e-6,dp-quantile=0.5,dp-clip-lr=0.1,dp-count-std=2,dp-seed=18446744073709551615,dp-conversion=classic",
			"fedavg", fl.Options{DP: &fl.DPConfig{ClipNorm: 1, NoiseMultiplier: 1.1, ClientsPerRound: 10, TotalClients: 100,
				Delta: 1e-6, TargetQuantile: 0.5, ClipLR: 0.1, CountStd: 2, Seed: 1<<64 - 1, Conversion: privacy.Classic}}},
	}
	for _, tt := range tests {
		name, opts, err := fl.ParseSpec(tt.spec)
		if err != nil || name != tt.name || !reflect.DeepEqual(opts, tt.want) {
			t.Errorf("ParseSpec(%q) = %q, %+v, %v; want %q, %+v, nil", tt.spec, name, opts, err, tt.name, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec, want string
	}{
		{"fedsgd", "unknown strategy"},
		{"", "unknown strategy"},
		{"median:3", "takes no"},
		{"fedavg,trim=0.1", "does not apply to fedavg"},
		{"fedavg:-1", "server learning rate"},
		{"fedavg:Inf", "finite number"},
		{"krum,beta1=0.9", "does not apply to krum"},
		{"trimmed-mean:abc", "finite number"},
		{"trimmed-mean:NaN", "finite number"},
		{"trimmed-mean:0.5", "trim beta"},
		{"krum:-1", "non-negative integer"},
		{"multi-krum,m=1.5", "non-negative integer"},
		{"fedavg,detect=maybe", "true or false"},
		{"fedavg,threshold", "needs a value"},
		{"fedavg,,detect", "empty option"},
		{"fedavgm:1", "momentum"},
		{"fedadam,beta2=1", "beta2"},
		{"fedavg,threshold=-2", "threshold"},
		{"median,dp-clip=1,dp-noise=1,dp-clients=1,dp-total=2", "averaging strategy"},
		{"fedavg,dp-clip=1", "clients per round"},
		{"fedavg,dp-clip=1,dp-noise=1,dp-clients=1,dp-total=2,dp-conversion=best", "improved or classic"},
		{"fedavg,dp-seed=-1", "unsigned"},
		{"fedavg" + strings.Repeat(",detect", 200), "exceeds"},
	}
	for _, tt := range tests {
		_, err := fl.Parse(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "fl: ") {
			t.Errorf("Parse(%q) = %v; want an fl: error containing %q", tt.spec, err, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	for _, name := range fl.Names() {
		s, err := fl.New(name, fl.Options{})
		if err != nil || s.Name() != name {
			t.Errorf("New(%q, {}) = %v, %v; want a strategy named %q", name, s, err, name)
		}
	}
	s, err := fl.New("fedadam", fl.Options{Detect: true, DP: &fl.DPConfig{ClipNorm: 1, NoiseMultiplier: 1, ClientsPerRound: 5, TotalClients: 50}})
	if err != nil || s.Name() != "fedadam+dp+detect" {
		t.Fatalf("New(fedadam, detect+dp) = %v, %v; want fedadam+dp+detect", s, err)
	}
	if st, ok := fl.StateOf(s); !ok {
		t.Errorf("StateOf(fedadam+dp+detect) found no state")
	} else if _, ok := st.(*fl.DP); !ok {
		t.Errorf("StateOf(fedadam+dp+detect) = %T; want *fl.DP (which includes fedadam's state)", st)
	}
	if _, ok := fl.StateOf(mustParse(t, "fedavg,detect")); ok {
		t.Errorf("StateOf(fedavg+detect) found state; want none")
	}
	if _, err := fl.New("krum", fl.Options{KrumF: -1}); err == nil {
		t.Errorf("New(krum, KrumF: -1) = nil error; want an error")
	}
}
