package fl_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/adversary"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/fltest"
)

func TestCoordinateRules(t *testing.T) {
	// Five updates of three coordinates; per coordinate the values are
	// {1,2,3,4,100}, {-5,0,0,1,2} and {7,7,7,7,-50}.
	deltas := [][]float32{{100, 0, 7}, {1, -5, 7}, {3, 2, -50}, {2, 0, 7}, {4, 1, 7}}
	var ups []fl.Update
	for i, d := range deltas {
		ups = append(ups, fl.Update{Client: string(rune('a' + i)), Samples: 1 + 100*i, Delta: d})
	}
	global := []float32{10, 20, 30}
	tests := []struct {
		spec string
		want []float32
	}{
		{"median", []float32{13, 20, 37}},
		{"trimmed-mean:0.2", []float32{10 + 3, 20 + 1.0/3, 37}},                // drops 1 at each end
		{"trimmed-mean:0.1", []float32{10 + 110.0/5, 20 - 2.0/5, 30 - 22.0/5}}, // floor(0.5) = 0: plain mean
	}
	for _, tt := range tests {
		got, res := fltest.Aggregate(t, mustParse(t, tt.spec), 1, fltest.Round{Global: global, Updates: ups})
		for i := range got {
			if math.Abs(float64(got[i]-tt.want[i])) > 1e-5 {
				t.Errorf("%s = %v; want %v", tt.spec, got, tt.want)
				break
			}
		}
		if res.Used != 5 {
			t.Errorf("%s: Used = %d; want 5", tt.spec, res.Used)
		}
	}
}

func TestKrumSelection(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	_, r := fltest.Honest(rng, 7, 200, 0.01, 0.3)
	// Two far-away updates.
	for _, i := range []int{2, 5} {
		for j := range r.Updates[i].Delta {
			r.Updates[i].Delta[j] = 0.5
		}
	}
	tests := []struct {
		spec     string
		used     int
		excluded []int // indices that must be excluded
	}{
		{"krum:2", 1, []int{2, 5}},
		{"multi-krum:2", 3, []int{2, 5}}, // m = n − 2f
		{"multi-krum:2,m=5", 5, []int{2, 5}},
		{"multi-krum", 3, []int{2, 5}}, // automatic f = (7-3)/2 = 2
	}
	for _, tt := range tests {
		got, res := fltest.Aggregate(t, mustParse(t, tt.spec), 1, r)
		if res.Used != tt.used {
			t.Errorf("%s: Used = %d; want %d", tt.spec, res.Used, tt.used)
		}
		for _, i := range tt.excluded {
			v := res.Verdicts[i]
			if !v.Excluded || !strings.Contains(v.Reason, "score") {
				t.Errorf("%s: Verdicts[%d] = %+v; want excluded with a score reason", tt.spec, i, v)
			}
		}
		if tt.spec == "krum:2" {
			// Krum returns exactly one of the honest updates.
			found := false
			for i, u := range r.Updates {
				if res.Verdicts[i].Excluded {
					continue
				}
				found = true
				for j := range got {
					if got[j] != float32(float64(r.Global[j])+float64(u.Delta[j])) {
						t.Errorf("krum: model is not global + the selected update")
						break
					}
				}
			}
			if !found {
				t.Errorf("krum: no update selected")
			}
		}
	}
}

func TestKrumTooFewUpdates(t *testing.T) {
	_, r := fltest.Honest(rand.New(rand.NewPCG(6, 6)), 6, 10, 0.01, 1)
	agg := mustParse(t, "krum:2").Begin(1, r.Global)
	for _, u := range r.Updates {
		if err := agg.Add(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	_, err := agg.Finish(context.Background(), make([]float32, 10))
	if !errors.Is(err, fl.ErrTooFewUpdates) {
		t.Errorf("krum:2 with 6 updates: Finish() = %v; want fl.ErrTooFewUpdates", err)
	}
}

// attackRound returns a round of 10 updates, 2 of them (indices 3 and 7)
// attacked, and the unweighted mean of the honest deltas.
func attackRound(rng *rand.Rand, attack string, n int) (fltest.Round, []float64, []bool) {
	const scale, noise = 0.01, 1.0
	_, r := fltest.Honest(rng, 10, n, scale, noise)
	a, err := adversary.Parse(attack)
	if err != nil {
		panic(err)
	}
	bad := make([]bool, 10)
	honest := make([]float64, n)
	for i, u := range r.Updates {
		if i == 3 || i == 7 {
			bad[i] = true
			a.Apply(u.Delta, rng)
			continue
		}
		for j, v := range u.Delta {
			honest[j] += float64(v) / 8
		}
	}
	return r, honest, bad
}

// relErr is ||(model − global) − ref|| / ||ref||.
func relErr(model, global []float32, ref []float64) float64 {
	var num, den float64
	for i, r := range ref {
		d := float64(model[i]) - float64(global[i]) - r
		num += d * d
		den += r * r
	}
	return math.Sqrt(num / den)
}

// TestRobustAgainstAttacks: with 2 of 10 updates attacked, the robust rules
// land near the honest mean while FedAvg is dragged far away.
func TestRobustAgainstAttacks(t *testing.T) {
	const robustMax, fedavgMin = 0.5, 0.9
	for _, attack := range []string{"sign-flip:5", "scale:10", "gaussian"} {
		rng := rand.New(rand.NewPCG(7, uint64(len(attack))))
		r, honest, _ := attackRound(rng, attack, 5000)
		for _, spec := range []string{"fedavg", "trimmed-mean:0.2", "median", "multi-krum:2", "krum:2", "fedavg,detect"} {
			got, _ := fltest.Aggregate(t, mustParse(t, spec), 1, r)
			e := relErr(got, r.Global, honest)
			t.Logf("%-12s %-18s relative error to honest mean %.3f", attack, spec, e)
			if spec == "fedavg" && e < fedavgMin {
				t.Errorf("%s under %s: relative error %.3f; want >= %v (dragged away)", spec, attack, e, fedavgMin)
			}
			if spec != "fedavg" && spec != "krum:2" && e > robustMax {
				t.Errorf("%s under %s: relative error %.3f; want <= %v", spec, attack, e, robustMax)
			}
			if spec == "krum:2" && e > 1.2 { // one honest update: its own noise remains
				t.Errorf("%s under %s: relative error %.3f; want <= 1.2", spec, attack, e)
			}
		}
	}
}

func TestMedianEvenCount(t *testing.T) {
	ups := []fl.Update{
		{Client: "a", Samples: 1, Delta: []float32{1}},
		{Client: "b", Samples: 1, Delta: []float32{4}},
		{Client: "c", Samples: 1, Delta: []float32{2}},
		{Client: "d", Samples: 1, Delta: []float32{100}},
	}
	got, _ := fltest.Aggregate(t, mustParse(t, "median"), 1, fltest.Round{Global: []float32{0}, Updates: ups})
	if got[0] != 3 {
		t.Errorf("median(1, 4, 2, 100) = %v; want 3", got[0])
	}
}

// TestCoordinateLarge exercises the parallel block path on more coordinates
// than one block, against a straightforward reference.
func TestCoordinateLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	_, r := fltest.Honest(rng, 9, 40000, 1, 1)
	got, _ := fltest.Aggregate(t, mustParse(t, "median"), 1, r)
	col := make([]float32, 9)
	for i := range got {
		for j, u := range r.Updates {
			col[j] = u.Delta[i]
		}
		slices.Sort(col)
		if want := float32(float64(r.Global[i]) + float64(col[4])); got[i] != want {
			t.Fatalf("median: coordinate %d = %v; want %v", i, got[i], want)
		}
	}
}
