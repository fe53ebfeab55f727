package fl

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sync"

	"github.com/qflare/qflare/shared/fl/privacy"
)

// DefaultDPDelta is the delta at which DP reports epsilon unless configured.
const DefaultDPDelta = 1e-5

// DPConfig configures user-level DP-FedAvg.
type DPConfig struct {
	// ClipNorm is the L2 bound C on each client's delta (the initial bound
	// with adaptive clipping). Required.
	ClipNorm float64
	// NoiseMultiplier is z: the noise on the sum of clipped deltas has
	// standard deviation z·C. Required (0 gives no privacy, and is allowed
	// only for testing: Epsilon is then +Inf).
	NoiseMultiplier float64
	// ClientsPerRound is the expected number of clients per round, qN. It is
	// the fixed denominator of the average and the numerator of the sampling
	// rate. Required.
	ClientsPerRound int
	// TotalClients is the population N the round's clients are sampled from;
	// the sampling rate is q = ClientsPerRound/TotalClients. Required.
	TotalClients int
	// Delta is the delta epsilon is reported at; 0 selects DefaultDPDelta.
	Delta float64
	// TargetQuantile turns on adaptive clipping (Andrew et al. 2021) toward
	// this quantile of the update norms, e.g. 0.5; 0 keeps C fixed.
	TargetQuantile float64
	// ClipLR is the adaptive clipping learning rate eta_C; 0 selects 0.2.
	ClipLR float64
	// CountStd is the standard deviation sigma_b of the noise on the count of
	// unclipped updates; 0 selects ClientsPerRound/20, as in Andrew et al.
	CountStd float64
	// Seed seeds the noise generator (PCG); 0 draws a seed from crypto/rand.
	// A fixed seed makes runs reproducible, and also makes the noise
	// predictable to whoever knows it.
	Seed uint64
	// Conversion selects the RDP-to-(epsilon, delta) conversion.
	Conversion privacy.Conversion
	// Orders are the RDP orders; nil selects privacy.DefaultOrders().
	Orders []float64
}

// DP is user-level DP-FedAvg (McMahan et al. 2018, "Learning differentially
// private recurrent language models"), with optional adaptive clipping (Andrew
// et al. 2021, "Differentially private learning with adaptive clipping").
//
// Each delta is clipped to L2 norm ≤ C as it is added (the input is scaled
// while it is folded in, never modified). At Finish the clipped deltas are
// summed with equal weights and divided by the fixed denominator W =
// ClientsPerRound (not by the number that arrived, so that one user changes
// the average by at most C/W), Gaussian noise with standard deviation z·C/W is
// added to each coordinate, and the inner strategy's server step is applied
// to the result (its optimizer state sees only noised averages). Sample counts
// are ignored.
//
// With adaptive clipping each round also counts the updates with norm ≤ C,
// adds N(0, sigma_b²) to the count, and moves C geometrically toward the
// target quantile gamma: C ← C·exp(−eta_C·(count/W − gamma)). The delta's
// noise multiplier is then raised to z_Δ = (z^−2 − (2·sigma_b)^−2)^−1/2, so that
// the two releases together cost what one Gaussian mechanism with multiplier
// z costs (Andrew et al., Theorem 1).
//
// After every round the accountant composes one step of the sampled Gaussian
// mechanism with q = ClientsPerRound/TotalClients and z, and Result.Epsilon is
// the epsilon spent so far at Result.Delta. A round with no updates releases
// nothing and costs nothing. The guarantee assumes the clients of a round are
// sampled independently with probability q; a Detector outside DP makes
// exclusions that depend on other clients' updates, which the accountant does
// not cover.
//
// DP is safe for concurrent use. Its state (clip norm, privacy spent, noise
// generator, inner optimizer state) persists across rounds; see MarshalState.
type DP struct {
	inner  stepper
	cfg    DPConfig
	q      float64
	zDelta float64 // noise multiplier applied to the delta sum
	orders []float64
	step   []float64 // RDP of one round at orders

	mu     sync.Mutex
	clip   float64
	rounds uint64
	rdp    []float64
	src    *mrand.PCG
	rng    *mrand.Rand
}

// NewDP returns a DP wrapper around inner, which must be an averaging
// strategy of this package (fedavg, fedavgm, fedprox, fedadam, fedyogi,
// fedadagrad): the sensitivity argument does not hold for robust rules.
func NewDP(inner Strategy, cfg DPConfig) (*DP, error) {
	st, ok := inner.(stepper)
	if !ok {
		name := "nil"
		if inner != nil {
			name = inner.Name()
		}
		return nil, fmt.Errorf("fl: dp needs an averaging strategy, not %s", name)
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	d := &DP{inner: st, cfg: cfg, orders: cfg.Orders, clip: cfg.ClipNorm}
	d.q = float64(cfg.ClientsPerRound) / float64(cfg.TotalClients)
	d.zDelta = cfg.NoiseMultiplier
	if cfg.TargetQuantile > 0 && cfg.NoiseMultiplier > 0 {
		d.zDelta = math.Pow(math.Pow(cfg.NoiseMultiplier, -2)-math.Pow(2*cfg.CountStd, -2), -0.5)
	}
	d.rdp = make([]float64, len(d.orders))
	d.step = privacy.RDP(d.q, cfg.NoiseMultiplier, 1, d.orders)
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		seed = binary.LittleEndian.Uint64(b[:])
	}
	d.src = mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	d.rng = mrand.New(d.src)
	return d, nil
}

// fill validates c and applies defaults.
func (c *DPConfig) fill() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !(c.ClipNorm > 0) || !finite(c.ClipNorm):
		return fmt.Errorf("fl: dp clip norm %v must be positive", c.ClipNorm)
	case !(c.NoiseMultiplier >= 0) || !finite(c.NoiseMultiplier):
		return fmt.Errorf("fl: dp noise multiplier %v must be non-negative", c.NoiseMultiplier)
	case c.ClientsPerRound <= 0:
		return fmt.Errorf("fl: dp clients per round %d must be positive", c.ClientsPerRound)
	case c.TotalClients < c.ClientsPerRound:
		return fmt.Errorf("fl: dp total clients %d below clients per round %d", c.TotalClients, c.ClientsPerRound)
	case !(c.Delta >= 0 && c.Delta < 1):
		return fmt.Errorf("fl: dp delta %v outside (0, 1)", c.Delta)
	case !(c.TargetQuantile >= 0 && c.TargetQuantile < 1):
		return fmt.Errorf("fl: dp target quantile %v outside [0, 1)", c.TargetQuantile)
	case !(c.ClipLR >= 0) || !finite(c.ClipLR):
		return fmt.Errorf("fl: dp clip learning rate %v must be non-negative", c.ClipLR)
	case !(c.CountStd >= 0) || !finite(c.CountStd):
		return fmt.Errorf("fl: dp count noise std %v must be non-negative", c.CountStd)
	case c.Conversion != privacy.Improved && c.Conversion != privacy.Classic:
		return fmt.Errorf("fl: dp conversion %d unknown", int(c.Conversion))
	}
	if c.Delta == 0 {
		c.Delta = DefaultDPDelta
	}
	if c.ClipLR == 0 {
		c.ClipLR = 0.2
	}
	if c.CountStd == 0 {
		c.CountStd = float64(c.ClientsPerRound) / 20
	}
	if c.Orders == nil {
		c.Orders = privacy.DefaultOrders()
	}
	c.Orders = slices.Clone(c.Orders)
	for _, o := range c.Orders {
		if !(o > 1) {
			return fmt.Errorf("fl: dp order %v must be greater than 1", o)
		}
	}
	if len(c.Orders) == 0 {
		return fmt.Errorf("fl: dp needs at least one RDP order")
	}
	if c.TargetQuantile > 0 && c.NoiseMultiplier > 0 && !(2*c.CountStd > c.NoiseMultiplier) {
		return fmt.Errorf("fl: dp adaptive clipping needs count noise std %v above z/2 = %v; raise CountStd or ClientsPerRound",
			c.CountStd, c.NoiseMultiplier/2)
	}
	return nil
}

// Name returns the inner strategy's name followed by "+dp".
func (d *DP) Name() string { return d.inner.Name() + "+dp" }

// ConfigureFit returns the inner strategy's configuration.
func (d *DP) ConfigureFit(round int, base FitConfig) FitConfig {
	return d.inner.ConfigureFit(round, base)
}

// Unwrap returns the inner strategy.
func (d *DP) Unwrap() Strategy { return d.inner }

// Config returns the configuration with defaults applied.
func (d *DP) Config() DPConfig {
	c := d.cfg
	c.Orders = slices.Clone(c.Orders)
	return c
}

// ClipNorm returns the clip norm the next round will use.
func (d *DP) ClipNorm() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.clip
}

// Spent returns the epsilon spent by the rounds so far and the delta it is
// stated at.
func (d *DP) Spent() (eps, delta float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epsilon(d.rdp), d.cfg.Delta
}

func (d *DP) epsilon(rdp []float64) float64 {
	eps, _ := privacy.Epsilon(d.orders, rdp, d.cfg.Delta, d.cfg.Conversion)
	return eps
}

// Begin starts a round with the current clip norm.
func (d *DP) Begin(_ int, global []float32) Aggregation {
	checkGlobal(global)
	d.mu.Lock()
	clip := d.clip
	d.mu.Unlock()
	return &dpAgg{d: d, global: global, clip: clip, sum: make([]float64, len(global))}
}

type dpAgg struct {
	d      *DP
	global []float32
	clip   float64

	mu       sync.Mutex
	sum      []float64
	below    int // updates with norm ≤ clip
	clipped  int
	verdicts []Verdict
	done     bool
}

// Add clips u.Delta to the round's clip norm while folding it in.
func (a *dpAgg) Add(ctx context.Context, u Update) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return ErrFinished
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	n, err := checkUpdate(u, len(a.sum))
	if err != nil {
		return err
	}
	v := Verdict{Client: u.Client}
	scale := 1.0
	if n > a.clip {
		scale = a.clip / n
		a.clipped++
		v.Reason = fmt.Sprintf("clipped to norm %.4g", a.clip)
	} else {
		a.below++
	}
	scale *= float64(u.scale()) // DP weighs updates 1, or their Weight
	for i, x := range u.Delta {
		a.sum[i] += scale * float64(x)
	}
	a.verdicts = append(a.verdicts, v)
	return nil
}

// Finish noises the fixed-denominator average, applies the inner server step,
// and accounts for the round.
func (a *dpAgg) Finish(ctx context.Context, dst []float32) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return Result{}, ErrFinished
	}
	checkDst(dst, len(a.sum))
	if err := ctxErr(ctx); err != nil {
		return Result{}, err
	}
	if len(a.verdicts) == 0 {
		return Result{Metrics: newMetrics()}, ErrNoUpdates
	}
	a.done = true
	d, cfg := a.d, a.d.cfg
	w := float64(cfg.ClientsPerRound)
	std := d.zDelta * a.clip / w

	d.mu.Lock()
	defer d.mu.Unlock()
	for i, s := range a.sum {
		a.sum[i] = s/w + std*d.rng.NormFloat64()
	}
	m := newMetrics()
	nextClip := d.clip
	if cfg.TargetQuantile > 0 {
		frac := (float64(a.below) + cfg.CountStd*d.rng.NormFloat64()) / w
		nextClip = a.clip * math.Exp(-cfg.ClipLR*(frac-cfg.TargetQuantile))
		m["dp_unclipped_fraction_noised"] = frac
	}
	rdp := make([]float64, len(d.rdp))
	for i := range rdp {
		rdp[i] = d.rdp[i] + d.step[i]
	}
	sm, err := d.inner.step(a.global, a.sum, dst)
	if err != nil {
		return Result{}, err
	}
	d.rdp, d.clip = rdp, nextClip
	d.rounds++
	for k, v := range sm {
		m[k] = v
	}
	m["dp_clip_norm"] = a.clip
	m["dp_next_clip_norm"] = nextClip
	m["dp_noise_std"] = std
	m["dp_noise_multiplier"] = cfg.NoiseMultiplier
	m["dp_delta_noise_multiplier"] = d.zDelta
	m["dp_rounds"] = float64(d.rounds)
	m["agg_norm"] = norm64(a.sum)
	a.sum = nil
	return Result{Used: len(a.verdicts), Verdicts: a.verdicts, Epsilon: d.epsilon(rdp), Delta: cfg.Delta, Metrics: m}, nil
}
