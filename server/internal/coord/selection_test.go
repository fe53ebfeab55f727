package coord

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestUtilitySelectionFavoursFastButKeepsSlow: with equal losses, utility
// selection picks clients measured fast far more often than clients
// measured 10x slower, and still picks the slow ones (their data is not
// dropped); clients never measured go first.
func TestUtilitySelectionFavoursFastButKeepsSlow(t *testing.T) {
	cfg := &Config{Selection: SelectUtility, LocalEpochs: 1}
	st := &state{clients: map[string]*client{}}
	var ids []string
	for i := range 20 {
		cl := &client{id: fmt.Sprintf("c%02d", i), slice: i, samples: 600, lastLoss: 0.3, secsPerSample: 0.001}
		if i%2 == 1 {
			cl.secsPerSample = 0.01 // 10x slower
		}
		st.clients[cl.id] = cl
		ids = append(ids, cl.id)
	}
	s := selector{cfg: cfg}
	picks := map[bool]int{}
	for n := 1; n <= 300; n++ {
		cands := append([]string(nil), ids...)
		for _, id := range s.pick(st, cands, 5, n, 0, rand.New(rand.NewPCG(1, uint64(n)))) {
			cl := st.clients[id]
			picks[cl.secsPerSample > 0.005]++
			cl.lastRound = n
		}
	}
	if picks[false] < 3*picks[true] || picks[true] == 0 {
		t.Errorf("fast clients picked %d times, slow %d; want fast ≥ 3x slow, and slow picked at all", picks[false], picks[true])
	}
	st.clients["c00"].secsPerSample = 0 // never measured
	got := s.pick(st, append([]string(nil), ids...), 3, 301, 0, rand.New(rand.NewPCG(1, 301)))
	if got[0] != "c00" {
		t.Errorf("picks %v; want the never-measured client first", got)
	}
}
