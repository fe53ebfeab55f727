package data

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// pcgStream is the second PCG seed word of every partition generator
// ("QFLARE d" in ASCII), so a partition depends only on the caller's seed.
const pcgStream = 0x51464c4152452064

// rng draws the random numbers the partitioners need. Only the raw 64-bit
// words come from math/rand/v2's PCG, whose output is specified; ranges,
// shuffles, normals and gammas are computed here with portable arithmetic
// so that results are the same on every platform and Go release.
type rng struct{ src *rand.PCG }

func newRNG(seed uint64) *rng { return &rng{src: rand.NewPCG(seed, pcgStream)} }

// intN returns a uniform integer in [0, n) by Lemire's multiply-and-reject
// method. n must be positive.
func (g *rng) intN(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(g.src.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(g.src.Uint64(), un)
		}
	}
	return int(hi)
}

// shuffle permutes a uniformly (Fisher–Yates).
func (g *rng) shuffle(a []int) {
	for i := len(a) - 1; i > 0; i-- {
		j := g.intN(i + 1)
		a[i], a[j] = a[j], a[i]
	}
}

// open01 returns a uniform float64 in the open interval (0, 1).
func (g *rng) open01() float64 {
	return (float64(g.src.Uint64()>>11) + 0.5) / (1 << 53)
}

// normal returns a standard normal variate (Marsaglia's polar method).
func (g *rng) normal() float64 {
	for {
		u := 2*g.open01() - 1
		v := 2*g.open01() - 1
		s := float64(u*u) + float64(v*v)
		if s < 1 {
			return u * math.Sqrt(-2*portableLog(s)/s)
		}
	}
}

// logGamma returns the logarithm of a Gamma(shape, 1) variate; working in
// logs keeps tiny shapes from underflowing to zero. It uses the method of
// Marsaglia and Tsang (2000), with the boost Gamma(a) = Gamma(a+1)*U^(1/a)
// for shapes below 1. shape must be positive and finite.
func (g *rng) logGamma(shape float64) float64 {
	if shape < 1 {
		return g.logGamma(shape+1) + portableLog(g.open01())/shape
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x, v := 0.0, 0.0
		for v <= 0 {
			x = g.normal()
			v = 1 + float64(c*x)
		}
		v = v * v * v
		u := g.open01()
		x2 := x * x
		if u < 1-float64(0.0331*x2*x2) {
			return portableLog(d) + portableLog(v)
		}
		if portableLog(u) < float64(0.5*x2)+float64(d*(1-v+portableLog(v))) {
			return portableLog(d) + portableLog(v)
		}
	}
}

// dirichlet fills p with a draw from the symmetric Dirichlet distribution
// Dir(alpha, ..., alpha): independent Gamma(alpha) variates, normalised.
func (g *rng) dirichlet(p []float64, alpha float64) {
	top := math.Inf(-1)
	for i := range p {
		p[i] = g.logGamma(alpha)
		top = max(top, p[i])
	}
	sum := 0.0
	for i := range p {
		p[i] = portableExp(p[i] - top)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
}
