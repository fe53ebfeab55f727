package coord

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// selector picks which of the candidate clients get work, by the run's
// Selection:
//
//   - random: uniformly, with the run's seed.
//   - deadline: uniformly among the clients whose measured speed lets
//     them finish before the deadline (clients never measured count as
//     able); a client skipped for its speed is tried again every
//     retryEvery rounds, since a device can get faster (a tab brought to
//     the foreground).
//   - utility: in the spirit of Oort (Lai et al., OSDI 2021): a client's
//     utility is its statistical utility (samples × its last training
//     loss: data the model still gets wrong teaches it most) plus Oort's
//     ageing term (a client unused for long gains utility), times a
//     penalty (T/t)^2 when its measured task time t exceeds the preferred
//     T (the deadline, or else the lower quartile of the measured times). Never
//     measured clients go first, a share explore of the picks is uniform,
//     and the rest are drawn in proportion to utility, not taken top-k:
//     a slow client's chance shrinks, but never to zero.
type selector struct {
	cfg *Config
}

const (
	// retryEvery is how often (in rounds) deadline selection tries a
	// client it skipped for being too slow.
	retryEvery = 10
	// explore is the share of utility picks made uniformly.
	explore = 0.1
	// slowPenalty is Oort's exponent on T/t for clients slower than T.
	slowPenalty = 2.0
)

// pick returns k of cands (which it may reorder) for round n; need is the
// fewest a round can start with (deadline selection falls back on the
// fastest others to reach it).
func (s selector) pick(st *state, cands []string, k, n, need int, rng *rand.Rand) []string {
	if k <= 0 {
		return nil
	}
	switch s.cfg.Selection {
	case SelectDeadline:
		return s.byDeadline(st, cands, k, n, need, rng)
	case SelectUtility:
		return s.byUtility(st, cands, k, n, rng)
	}
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	return cands[:min(k, len(cands))]
}

// estimate returns how long cl is expected to take for a task (0 when it
// was never measured).
func (s selector) estimate(st *state, cl *client) time.Duration {
	if cl.secsPerSample <= 0 {
		return 0
	}
	return time.Duration(cl.secsPerSample * float64(cl.samples*s.cfg.LocalEpochs) * float64(time.Second))
}

func (s selector) byDeadline(st *state, cands []string, k, n, need int, rng *rand.Rand) []string {
	limit := time.Duration(s.cfg.RoundDeadline)
	var fit, slow []string
	for _, id := range cands {
		cl := st.clients[id]
		if e := s.estimate(st, cl); e > limit && (n+cl.slice)%retryEvery != 0 {
			slow = append(slow, id)
			continue
		}
		fit = append(fit, id)
	}
	rng.Shuffle(len(fit), func(i, j int) { fit[i], fit[j] = fit[j], fit[i] })
	if len(fit) >= max(need, 1) || len(slow) == 0 {
		return fit[:min(k, len(fit))]
	}
	// Too few can make it: the fastest of the others make up the number.
	slices.SortStableFunc(slow, func(a, b string) int {
		return int(s.estimate(st, st.clients[a]) - s.estimate(st, st.clients[b]))
	})
	return append(fit, slow[:min(need-len(fit), len(slow))]...)[:min(k, len(fit)+len(slow))]
}

func (s selector) byUtility(st *state, cands []string, k, n int, rng *rand.Rand) []string {
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	var fresh, known []string
	for _, id := range cands {
		if st.clients[id].secsPerSample <= 0 {
			fresh = append(fresh, id)
		} else {
			known = append(known, id)
		}
	}
	out := make([]string, 0, k)
	out = append(out, fresh[:min(k, len(fresh))]...)
	if len(out) == k || len(known) == 0 {
		return out
	}
	// Preferred task time: the deadline, or the lower quartile of the
	// measured times (the median would fall among the slow clients of a
	// population that is half slow).
	pref := float64(time.Duration(s.cfg.RoundDeadline)) / float64(time.Second)
	times := make([]float64, len(known))
	for i, id := range known {
		times[i] = s.estimate(st, st.clients[id]).Seconds()
	}
	if pref == 0 {
		sorted := slices.Clone(times)
		slices.Sort(sorted)
		pref = sorted[len(sorted)/4]
	}
	util := make([]float64, len(known))
	maxStat := 0.0
	for i, id := range known {
		cl := st.clients[id]
		util[i] = float64(cl.samples) * math.Max(cl.lastLoss, 1e-3)
		maxStat = max(maxStat, util[i])
	}
	for i, id := range known {
		cl := st.clients[id]
		u := util[i] / maxStat
		// Oort's temporal uncertainty: sqrt(0.1 ln n / last round used).
		u += math.Sqrt(0.1 * math.Log(float64(max(n, 2))) / float64(max(cl.lastRound, 1)))
		if t := times[i]; t > pref && pref > 0 {
			u *= math.Pow(pref/t, slowPenalty)
		}
		util[i] = u
	}
	left := k - len(out)
	uniform := int(math.Round(explore * float64(left)))
	if uniform == 0 && left > 1 && rng.Float64() < explore*float64(left) {
		uniform = 1
	}
	for ; uniform > 0 && len(known) > 0; uniform-- { // known is shuffled
		out, known, util = append(out, known[len(known)-1]), known[:len(known)-1], util[:len(util)-1]
	}
	for len(out) < k && len(known) > 0 {
		total := 0.0
		for _, u := range util {
			total += u
		}
		x, i := rng.Float64()*total, 0
		for ; i < len(util)-1 && x >= util[i]; i++ {
			x -= util[i]
		}
		out = append(out, known[i])
		known = slices.Delete(known, i, i+1)
		util = slices.Delete(util, i, i+1)
	}
	return out
}
