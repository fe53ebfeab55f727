package coord

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Staleness weights an asynchronous update by how many server steps behind
// the model it trained from is (τ): its delta is multiplied by the weight
// before it joins the buffer (FedBuff, Nguyen et al. 2022, section 3).
type Staleness struct {
	kind string  // "sqrt", "constant" or "hinge"
	a, b float64 // hinge parameters
}

// ParseStaleness reads "sqrt" (1/sqrt(1+τ)), "constant" (1) or
// "hinge:A,B" (1 while τ ≤ B, then 1/(1+A(τ−B))).
func ParseStaleness(s string) (Staleness, error) {
	switch {
	case s == "sqrt", s == "constant":
		return Staleness{kind: s}, nil
	case strings.HasPrefix(s, "hinge:"):
		a, b, ok := strings.Cut(strings.TrimPrefix(s, "hinge:"), ",")
		av, aerr := strconv.ParseFloat(a, 64)
		bv, berr := strconv.ParseFloat(b, 64)
		if !ok || aerr != nil || berr != nil || !(av > 0 && av <= 1000) || !(bv >= 0 && bv <= maxStaleness) {
			return Staleness{}, fmt.Errorf("staleness %q: want hinge:A,B with 0 < A ≤ 1000 and 0 ≤ B ≤ %d", s, maxStaleness)
		}
		return Staleness{kind: "hinge", a: av, b: bv}, nil
	}
	return Staleness{}, fmt.Errorf("staleness %q is not sqrt, constant or hinge:A,B", s)
}

// Weight returns the weight of an update tau steps stale.
func (s Staleness) Weight(tau int) float64 {
	t := float64(max(tau, 0))
	switch s.kind {
	case "sqrt":
		return 1 / math.Sqrt(1+t)
	case "hinge":
		if t <= s.b {
			return 1
		}
		return 1 / (1 + s.a*(t-s.b))
	}
	return 1
}
