// Package adversary emulates malicious clients for robustness studies: an
// Attack transforms an honest client's trained delta (sign-flip, gaussian,
// scale:K) or its labels (label-flip), and Choose picks which clients of a
// population attack. The browser participant links it only for that
// emulation; the aggregation strategies live in package fl.
package adversary

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Attack is a simulated misbehaviour of a client, for robustness studies. The
// zero value is no attack. Attack values are immutable and safe for
// concurrent use.
type Attack struct {
	kind   string  // "", "sign-flip", "gaussian", "scale", "label-flip"
	factor float64 // sign-flip K (delta → −K·delta) or scale K
	sigma  float64 // gaussian: absolute std; 0 = gaussianScale× the honest RMS
}

// maxAttackClients bounds the population Choose accepts.
const maxAttackClients = 1 << 24

// gaussianScale is the default gaussian attack's noise relative to an
// honest update's RMS coordinate: at 10× two attackers in ten only add
// noise FedAvg averages away (0.97 after 60 rounds in the study); at 100×
// they overwhelm it, as the Gaussian attacks of the robustness literature do.
const gaussianScale = 100

// defaultFlip is sign-flip's factor: with a fifth of the clients attacking,
// a plain flip (−1) only slows FedAvg down; −10 overwhelms it, which is what
// robustness studies need to show.
const defaultFlip = 10

// maxAttackFactor bounds the factors Parse accepts.
const maxAttackFactor = 1e6

// Parse parses an attack name:
//
//	none           honest
//	sign-flip      delta → −10·delta, the amplified flip of the Byzantine-
//	               robustness literature; sign-flip:K gives −K·delta
//	               (sign-flip:1 is the plain flip)
//	gaussian       delta replaced by N(0, s²) noise with s = 100× the honest
//	               delta's root-mean-square coordinate; gaussian:S uses s = S
//	scale:K        delta → K·delta
//	label-flip     trains on labels y → classes−1−y; the delta is left alone
//
// An empty string is "none".
func Parse(s string) (Attack, error) {
	if len(s) > 64 {
		return Attack{}, fmt.Errorf("adversary: attack %q too long", s[:64]+"...")
	}
	name, arg, hasArg := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	num := func(lo float64) (float64, error) {
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(v >= lo && v <= maxAttackFactor) {
			return 0, fmt.Errorf("adversary: attack %q: want a number in [%v, %v] after the colon", s, lo, maxAttackFactor)
		}
		return v, nil
	}
	var err error
	switch a := (Attack{kind: name}); {
	case (name == "none" || name == "") && !hasArg:
		return Attack{}, nil
	case name == "label-flip" && !hasArg:
		return a, nil
	case name == "sign-flip":
		a.factor = defaultFlip
		if hasArg {
			a.factor, err = num(0)
		}
		return a, err
	case name == "gaussian":
		if hasArg {
			a.sigma, err = num(0)
		}
		return a, err
	case name == "scale" && hasArg:
		a.factor, err = num(-maxAttackFactor)
		return a, err
	}
	return Attack{}, fmt.Errorf("adversary: unknown attack %q (known: none, sign-flip[:K], gaussian[:SIGMA], scale:K, label-flip)", s)
}

// String returns the attack in the form Parse accepts.
func (a Attack) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch a.kind {
	case "":
		return "none"
	case "sign-flip":
		return "sign-flip:" + f(a.factor)
	case "gaussian":
		if a.sigma != 0 {
			return "gaussian:" + f(a.sigma)
		}
	case "scale":
		return "scale:" + f(a.factor)
	}
	return a.kind
}

// IsNone reports whether a is no attack.
func (a Attack) IsNone() bool { return a.kind == "" }

// Apply transforms an honest delta in place, as the attack prescribes (label
// flipping and no attack leave it alone). rng is used only by the gaussian
// attack, which panics if it is nil.
func (a Attack) Apply(delta []float32, rng *rand.Rand) {
	switch a.kind {
	case "sign-flip":
		scaleInPlace(delta, -a.factor)
	case "scale":
		scaleInPlace(delta, a.factor)
	case "gaussian":
		if rng == nil {
			panic("adversary: gaussian attack needs a random source")
		}
		s := a.sigma
		if s == 0 {
			s = gaussianScale * l2(delta) / math.Sqrt(float64(max(1, len(delta))))
		}
		for i := range delta {
			delta[i] = float32(s * rng.NormFloat64())
		}
	}
}

func scaleInPlace(x []float32, k float64) {
	for i, v := range x {
		x[i] = float32(k * float64(v))
	}
}

// FlipLabel returns the label a client under attack trains on: classes−1−y for
// label-flip, y otherwise. It panics if y is not below classes.
func (a Attack) FlipLabel(y uint8, classes int) uint8 {
	if int(y) >= classes {
		panic(fmt.Sprintf("adversary: label %d outside %d classes", y, classes))
	}
	if a.kind != "label-flip" {
		return y
	}
	return uint8(classes - 1 - int(y))
}

// Choose decides deterministically which of total clients (indexed 0 to
// total−1) are attackers: exactly round(fraction·total) of them, chosen by a
// permutation seeded with seed. Every participant computing it with the same
// arguments gets the same answer.
func Choose(total int, fraction float64, seed uint64) ([]bool, error) {
	if total < 0 || total > maxAttackClients {
		return nil, fmt.Errorf("adversary: client count %d outside [0, %d]", total, maxAttackClients)
	}
	if !(fraction >= 0 && fraction <= 1) {
		return nil, fmt.Errorf("adversary: attacker fraction %v outside [0, 1]", fraction)
	}
	k := int(math.Round(fraction * float64(total)))
	rng := rand.New(rand.NewPCG(seed, 0x61747461636b73)) // "attacks"
	out := make([]bool, total)
	for _, i := range rng.Perm(total)[:k] {
		out[i] = true
	}
	return out, nil
}

// l2 returns the L2 norm of x, accumulated in float64.
func l2(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s)
}
