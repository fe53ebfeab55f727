package fl_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/adversary"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/fl/fltest"
)

// heterogeneousRound returns 10 updates of n parameters: honest deltas are a
// common direction plus per-client noise of strength drawn from [0.5, 1.5]
// (pairwise cosines about 0.3 to 0.8) and a per-client step size drawn from
// [0.7, 1.4]; the clients in bad are then attacked.
func heterogeneousRound(rng *rand.Rand, n int, attack adversary.Attack, bad map[int]bool) fltest.Round {
	common := make([]float32, n)
	for i := range common {
		common[i] = float32(rng.NormFloat64() * 0.01)
	}
	r := fltest.Round{Global: make([]float32, n)}
	for c := range 10 {
		noise := 0.5 + rng.Float64()
		step := 0.7 + 0.7*rng.Float64()
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(step * (float64(common[i]) + noise*0.01*rng.NormFloat64()))
		}
		if bad[c] {
			attack.Apply(d, rng)
		}
		r.Updates = append(r.Updates, fl.Update{Client: fmt.Sprintf("c%d", c), Samples: 100, Delta: d})
	}
	return r
}

// TestDetectionRates: over many rounds of 10 clients with 2 attackers,
// detection flags at least 90% of attacker updates and at most 5% of honest
// ones, for each attack.
func TestDetectionRates(t *testing.T) {
	const rounds, n = 40, 4000
	for _, name := range []string{"sign-flip", "sign-flip:5", "gaussian", "scale:10", "none"} {
		t.Run(name, func(t *testing.T) {
			attack, err := adversary.Parse(name)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(42, uint64(len(name))))
			var badFlagged, badTotal, goodFlagged, goodTotal int
			for range rounds {
				i, j := rng.IntN(10), rng.IntN(9)
				if j >= i {
					j++
				}
				bad := map[int]bool{i: true, j: true}
				if attack.IsNone() {
					bad = nil
				}
				r := heterogeneousRound(rng, n, attack, bad)
				_, res := fltest.Aggregate(t, mustParse(t, "fedavg,detect"), 1, r)
				for c, v := range res.Verdicts {
					switch {
					case bad[c]:
						badTotal++
						if v.Excluded {
							badFlagged++
						}
					default:
						goodTotal++
						if v.Excluded {
							goodFlagged++
						}
					}
				}
			}
			t.Logf("%-11s attackers flagged %d/%d, honest flagged %d/%d", name, badFlagged, badTotal, goodFlagged, goodTotal)
			if badTotal > 0 && float64(badFlagged) < 0.9*float64(badTotal) {
				t.Errorf("detection under %s flags %d of %d attacker updates; want >= 90%%", name, badFlagged, badTotal)
			}
			if float64(goodFlagged) > 0.05*float64(goodTotal) {
				t.Errorf("detection under %s flags %d of %d honest updates; want <= 5%%", name, goodFlagged, goodTotal)
			}
		})
	}
}

func TestDetectionVerdicts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	signFlip, _ := adversary.Parse("sign-flip")
	scale, _ := adversary.Parse("scale:10")
	r := heterogeneousRound(rng, 2000, signFlip, map[int]bool{1: true})
	scale.Apply(r.Updates[6].Delta, nil)
	_, res := fltest.Aggregate(t, mustParse(t, "median,detect"), 1, r)
	tests := []struct {
		i      int
		reason string
	}{{1, "cosine -"}, {6, "norm 1"}}
	for _, tt := range tests {
		v := res.Verdicts[tt.i]
		if !v.Excluded || !strings.HasPrefix(v.Reason, tt.reason) || v.Score <= fl.DefaultDetectThreshold {
			t.Errorf("Verdicts[%d] = %+v; want excluded, score > %v, reason starting %q", tt.i, v, fl.DefaultDetectThreshold, tt.reason)
		}
	}
	if res.Used != 8 || res.Metrics["detect_excluded"] != 2 {
		t.Errorf("Used = %d, detect_excluded = %v; want 8, 2", res.Used, res.Metrics["detect_excluded"])
	}
	for i, v := range res.Verdicts {
		if v.Cosine == 0 || v.NormRatio == 0 {
			t.Errorf("Verdicts[%d] = %+v; want cosine and norm ratio filled in", i, v)
		}
	}
}

func TestDetectionExcludesAll(t *testing.T) {
	d, err := fl.NewDetector(mustParse(t, "fedavg"), 1e-9)
	if err != nil {
		t.Fatal(err)
	}
	// Four updates of distinct norms: each differs from the median norm.
	var ups []fl.Update
	for i := range 4 {
		ups = append(ups, fl.Update{Client: fmt.Sprint(i), Samples: 1, Delta: []float32{float32(i + 1), 1}})
	}
	agg := d.Begin(1, []float32{0, 0})
	for _, u := range ups {
		if err := agg.Add(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	dst := []float32{7, 7}
	res, err := agg.Finish(context.Background(), dst)
	if !errors.Is(err, fl.ErrNoUpdates) || len(res.Verdicts) != 4 || dst[0] != 7 {
		t.Errorf("Finish() with all excluded = %d verdicts, %v, dst %v; want 4, ErrNoUpdates, untouched", len(res.Verdicts), err, dst)
	}
}

func TestNewDetectorErrors(t *testing.T) {
	for _, th := range []float64{-1} {
		if _, err := fl.NewDetector(mustParse(t, "fedavg"), th); err == nil {
			t.Errorf("NewDetector(fedavg, %v) = nil error; want an error", th)
		}
	}
	if _, err := fl.NewDetector(nil, 0); err == nil {
		t.Errorf("NewDetector(nil, 0) = nil error; want an error")
	}
	d, _ := fl.NewDetector(mustParse(t, "fedavg"), 0)
	if d.Threshold() != fl.DefaultDetectThreshold || d.Name() != "fedavg+detect" {
		t.Errorf("NewDetector(fedavg, 0) = %s threshold %v; want fedavg+detect %v", d.Name(), d.Threshold(), fl.DefaultDetectThreshold)
	}
}

// TestDetectionHistory: when attackers are a majority of a round, the
// round's own medians are theirs; the norm history from the previous round
// still flags amplified updates, which a detector without history misses.
func TestDetectionHistory(t *testing.T) {
	scale, _ := adversary.Parse("scale:10")
	bad := map[int]bool{0: true, 2: true, 4: true, 5: true, 7: true, 9: true}
	flagged := func(withHistory bool) int {
		s := mustParse(t, "fedavg,detect")
		rng := rand.New(rand.NewPCG(8, 8))
		if withHistory {
			fltest.Aggregate(t, s, 1, heterogeneousRound(rng, 2000, scale, nil))
		}
		_, res := fltest.Aggregate(t, s, 2, heterogeneousRound(rng, 2000, scale, bad))
		n := 0
		for c, v := range res.Verdicts {
			if v.Excluded && !bad[c] && withHistory {
				t.Errorf("honest client %d excluded: %s", c, v.Reason)
			}
			if v.Excluded && bad[c] {
				n++
			}
		}
		return n
	}
	if got := flagged(true); got != len(bad) {
		t.Errorf("with a previous honest round, %d of %d majority attackers flagged; want all", got, len(bad))
	}
	if got := flagged(false); got == len(bad) {
		t.Errorf("without history all %d majority attackers were flagged; the test no longer shows what history adds", got)
	}
}
