package fl_test

import (
	"testing"

	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/fltest"
)

// mustParse builds a strategy from a spec or fails the test.
func mustParse(t testing.TB, spec string) fl.Strategy {
	t.Helper()
	s, err := fl.Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%q) = %v", spec, err)
	}
	return s
}

// TestStrategies runs the shared suite over every strategy and wrapper.
func TestStrategies(t *testing.T) {
	dp := ",dp-clip=0.5,dp-noise=0.8,dp-clients=10,dp-total=100,dp-seed=7"
	tests := []struct {
		spec     string
		promises fltest.Promises
	}{
		{"fedavg", fltest.Promises{OrderIndependent: true, Identical: true, Partials: true}},
		{"fedprox:0.1", fltest.Promises{OrderIndependent: true, Identical: true, Partials: true}},
		{"fedavgm", fltest.Promises{OrderIndependent: true, Identical: true, Partials: true}}, // first round: m = delta
		{"fedadam", fltest.Promises{OrderIndependent: true, Partials: true}},
		{"fedyogi", fltest.Promises{OrderIndependent: true, Partials: true}},
		{"fedadagrad", fltest.Promises{OrderIndependent: true, Partials: true}},
		{"krum", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"multi-krum", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"multi-krum:1,m=3", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"trimmed-mean:0.2", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"trimmed-mean:0.45", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"median", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"fedavg,detect", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"median,detect", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"multi-krum,detect", fltest.Promises{OrderIndependent: true, Identical: true}},
		{"fedadam,detect", fltest.Promises{OrderIndependent: true}},
		{"fedavg" + dp, fltest.Promises{OrderIndependent: true}},
		{"fedyogi" + dp, fltest.Promises{OrderIndependent: true}},
		{"fedavg,detect,dp-quantile=0.5" + dp, fltest.Promises{OrderIndependent: true}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			fltest.TestStrategy(t, func() fl.Strategy { return mustParse(t, tt.spec) }, tt.promises)
		})
	}
}
