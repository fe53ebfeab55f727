package fl

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/qflare/qflare/shared/fl/privacy"
)

// Options configures the strategies built by New. The zero value of every
// field selects the strategy's default (listed per field); fields that do not
// apply to the named strategy are ignored. Because zero means "default", a
// literal 0 cannot be chosen where the default is not 0 (FedAvgM's momentum:
// use fedavg; FedAdam's beta1: use a tiny positive value).
type Options struct {
	// ServerLR is the server learning rate eta. Defaults: fedavg, fedprox
	// and fedavgm 1, fedadam 0.1, fedyogi 0.01, fedadagrad 0.1 (Flower's
	// defaults).
	ServerLR float64
	// Momentum is FedAvgM's server momentum beta; default 0.9.
	Momentum float64
	// Beta1 is the first-moment decay of fedadam and fedyogi (default 0.9)
	// and fedadagrad (default 0: no momentum, as in Flower).
	Beta1 float64
	// Beta2 is the second-moment decay of fedadam and fedyogi; default 0.99.
	Beta2 float64
	// Tau is the adaptivity (epsilon) of fedadam and fedyogi (default 1e-3)
	// and fedadagrad (default 1e-9).
	Tau float64
	// Mu is FedProx's proximal coefficient; default 0.01.
	Mu float64
	// TrimBeta is the fraction trimmed from each end by trimmed-mean, in
	// [0, 0.5); default 0.2.
	TrimBeta float64
	// KrumF is the number of byzantine clients Krum and Multi-Krum assume;
	// 0 selects the largest the round allows, ⌊(n−3)/2⌋ for n updates.
	KrumF int
	// KrumM is the number of updates Multi-Krum averages; 0 selects n − 2f.
	KrumM int
	// Detect wraps the strategy in a Detector.
	Detect bool
	// DetectThreshold is the Detector's score threshold; 0 selects
	// DefaultDetectThreshold.
	DetectThreshold float64
	// DP, when not nil, wraps the strategy in DP (inside the Detector).
	DP *DPConfig
}

// Names returns the strategy names New accepts.
func Names() []string {
	return []string{"fedavg", "fedavgm", "fedprox", "fedadam", "fedyogi", "fedadagrad",
		"krum", "multi-krum", "trimmed-mean", "median"}
}

// New builds the strategy called name with opts. With opts.DP it is wrapped in
// DP, and with opts.Detect the result is wrapped in a Detector (detection sees
// the raw deltas; DP clips and noises those that pass).
func New(name string, opts Options) (Strategy, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	s, err := newBase(name, opts)
	if err != nil {
		return nil, err
	}
	if opts.DP != nil {
		if s, err = NewDP(s, *opts.DP); err != nil {
			return nil, err
		}
	}
	if opts.Detect {
		if s, err = NewDetector(s, opts.DetectThreshold); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func newBase(name string, o Options) (Strategy, error) {
	or := func(v, def float64) float64 {
		if v == 0 {
			return def
		}
		return v
	}
	switch name {
	case "fedavg":
		return &mean{name: name, eta: or(o.ServerLR, 1)}, nil
	case "fedprox":
		return &mean{name: name, mu: or(o.Mu, 0.01), eta: or(o.ServerLR, 1)}, nil
	case "fedavgm":
		return &serverOpt{kind: optMomentum, eta: or(o.ServerLR, 1), beta1: or(o.Momentum, 0.9)}, nil
	case "fedadam":
		return &serverOpt{kind: optAdam, eta: or(o.ServerLR, 0.1), beta1: or(o.Beta1, 0.9), beta2: or(o.Beta2, 0.99), tau: or(o.Tau, 1e-3)}, nil
	case "fedyogi":
		return &serverOpt{kind: optYogi, eta: or(o.ServerLR, 0.01), beta1: or(o.Beta1, 0.9), beta2: or(o.Beta2, 0.99), tau: or(o.Tau, 1e-3)}, nil
	case "fedadagrad":
		return &serverOpt{kind: optAdagrad, eta: or(o.ServerLR, 0.1), beta1: o.Beta1, tau: or(o.Tau, 1e-9)}, nil
	case "krum", "multi-krum":
		return &krum{multi: name == "multi-krum", f: o.KrumF, m: o.KrumM}, nil
	case "trimmed-mean":
		return &coordinate{name: name, beta: or(o.TrimBeta, 0.2)}, nil
	case "median":
		return &coordinate{name: name}, nil
	}
	return nil, fmt.Errorf("fl: unknown strategy %q (known: %s)", name, strings.Join(Names(), ", "))
}

// check validates the ranges of o.
func (o Options) check() error {
	type rng struct {
		name   string
		v      float64
		lo, hi float64 // lo ≤ v < hi
	}
	for _, r := range []rng{
		{"server learning rate", o.ServerLR, 0, math.Inf(1)},
		{"momentum", o.Momentum, 0, 1},
		{"beta1", o.Beta1, 0, 1},
		{"beta2", o.Beta2, 0, 1},
		{"tau", o.Tau, 0, math.Inf(1)},
		{"mu", o.Mu, 0, math.Inf(1)},
		{"trim beta", o.TrimBeta, 0, 0.5},
		{"detection threshold", o.DetectThreshold, 0, math.Inf(1)},
	} {
		if !(r.v >= r.lo && r.v < r.hi) {
			return fmt.Errorf("fl: %s %v outside [%v, %v)", r.name, r.v, r.lo, r.hi)
		}
	}
	if o.KrumF < 0 || o.KrumM < 0 {
		return fmt.Errorf("fl: krum f %d and m %d must not be negative", o.KrumF, o.KrumM)
	}
	return nil
}

// Parse builds a strategy from a spec string; see ParseSpec.
func Parse(spec string) (Strategy, error) {
	name, opts, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return New(name, opts)
}

// primaryKey maps each strategy to the key its bare ":VALUE" argument sets.
var primaryKey = map[string]string{
	"fedavg": "eta", "fedprox": "mu", "fedavgm": "momentum", "fedadam": "eta", "fedyogi": "eta",
	"fedadagrad": "eta", "krum": "f", "multi-krum": "f", "trimmed-mean": "trim",
}

// keysFor lists the keys that apply to each strategy, beyond the common ones.
var keysFor = map[string][]string{
	"fedavg":       {"eta"},
	"fedprox":      {"mu", "eta"},
	"fedavgm":      {"eta", "momentum"},
	"fedadam":      {"eta", "beta1", "beta2", "tau"},
	"fedyogi":      {"eta", "beta1", "beta2", "tau"},
	"fedadagrad":   {"eta", "beta1", "tau"},
	"krum":         {"f"},
	"multi-krum":   {"f", "m"},
	"trimmed-mean": {"trim"},
	"median":       nil,
}

// commonKeys apply to every strategy (the dp- keys only to averaging ones,
// which New checks).
var commonKeys = []string{"detect", "threshold", "dp-clip", "dp-noise", "dp-clients", "dp-total",
	"dp-delta", "dp-quantile", "dp-clip-lr", "dp-count-std", "dp-seed", "dp-conversion"}

// maxSpecLen bounds the spec strings ParseSpec accepts.
const maxSpecLen = 1024

// ParseSpec parses a strategy spec of the form
//
//	NAME[:VALUE][,KEY=VALUE]...
//
// The bare VALUE sets the strategy's main parameter: fedavg eta (the server
// learning rate), fedprox mu, fedavgm
// momentum, fedadam/fedyogi/fedadagrad eta, krum/multi-krum f, trimmed-mean
// trim. Keys: eta, momentum, beta1, beta2, tau, mu, trim, f, m (each only
// where it applies); detect (bare, or =true/false), threshold; and for DP
// dp-clip, dp-noise (z), dp-clients (per round), dp-total (population),
// dp-delta, dp-quantile (adaptive clipping target), dp-clip-lr, dp-count-std,
// dp-seed, dp-conversion (improved or classic). Any dp- key turns DP on.
// Examples: "trimmed-mean:0.2", "multi-krum:2,m=5", "fedadam,eta=0.01,detect",
// "fedavg,dp-clip=1,dp-noise=1.1,dp-clients=10,dp-total=100".
func ParseSpec(spec string) (name string, opts Options, err error) {
	if len(spec) > maxSpecLen {
		return "", Options{}, fmt.Errorf("fl: strategy spec of %d bytes exceeds %d", len(spec), maxSpecLen)
	}
	parts := strings.Split(strings.TrimSpace(spec), ",")
	name, arg, hasArg := strings.Cut(parts[0], ":")
	name = strings.ToLower(strings.TrimSpace(name))
	allowed, ok := keysFor[name]
	if !ok {
		return "", Options{}, fmt.Errorf("fl: unknown strategy %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	allowed = append(slices.Clone(allowed), commonKeys...)
	p := specParser{name: name}
	if hasArg {
		key, ok := primaryKey[name]
		if !ok {
			return "", Options{}, fmt.Errorf("fl: %s takes no \":VALUE\" argument", name)
		}
		p.set(key, strings.TrimSpace(arg))
	}
	for _, kv := range parts[1:] {
		k, v, hasV := strings.Cut(strings.TrimSpace(kv), "=")
		k = strings.ToLower(strings.TrimSpace(k))
		switch {
		case k == "":
			return "", Options{}, fmt.Errorf("fl: empty option in strategy spec %q", spec)
		case !slices.Contains(allowed, k):
			return "", Options{}, fmt.Errorf("fl: option %q does not apply to %s (options: %s)", k, name, strings.Join(allowed, ", "))
		case !hasV && k != "detect":
			return "", Options{}, fmt.Errorf("fl: option %q needs a value", k)
		case !hasV:
			v = "true"
		}
		p.set(k, strings.TrimSpace(v))
	}
	if p.err != nil {
		return "", Options{}, p.err
	}
	p.opts.DP = p.dp
	return name, p.opts, nil
}

// specParser accumulates options from spec keys, keeping the first error.
type specParser struct {
	name string
	opts Options
	dp   *DPConfig
	err  error
}

func (p *specParser) set(key, val string) {
	if p.err != nil {
		return
	}
	if strings.HasPrefix(key, "dp-") {
		if p.dp == nil {
			p.dp = new(DPConfig)
		}
		p.setDP(key, val)
		return
	}
	o := &p.opts
	switch key {
	case "detect":
		switch strings.ToLower(val) {
		case "true", "on", "yes", "1":
			o.Detect = true
		case "false", "off", "no", "0":
			o.Detect = false
		default:
			p.err = fmt.Errorf("fl: option detect=%q: want true or false", val)
		}
	case "f", "m":
		n := p.integer(key, val)
		if key == "f" {
			o.KrumF = n
		} else {
			o.KrumM = n
		}
	default:
		dst := map[string]*float64{"eta": &o.ServerLR, "momentum": &o.Momentum, "beta1": &o.Beta1,
			"beta2": &o.Beta2, "tau": &o.Tau, "mu": &o.Mu, "trim": &o.TrimBeta, "threshold": &o.DetectThreshold}[key]
		*dst = p.float(key, val)
	}
}

func (p *specParser) setDP(key, val string) {
	c := p.dp
	switch key {
	case "dp-clients":
		c.ClientsPerRound = p.integer(key, val)
	case "dp-total":
		c.TotalClients = p.integer(key, val)
	case "dp-seed":
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			p.err = fmt.Errorf("fl: option dp-seed=%q: want an unsigned integer", val)
		}
		c.Seed = v
	case "dp-conversion":
		switch strings.ToLower(val) {
		case "improved":
			c.Conversion = privacy.Improved
		case "classic":
			c.Conversion = privacy.Classic
		default:
			p.err = fmt.Errorf("fl: option dp-conversion=%q: want improved or classic", val)
		}
	default:
		dst := map[string]*float64{"dp-clip": &c.ClipNorm, "dp-noise": &c.NoiseMultiplier, "dp-delta": &c.Delta,
			"dp-quantile": &c.TargetQuantile, "dp-clip-lr": &c.ClipLR, "dp-count-std": &c.CountStd}[key]
		*dst = p.float(key, val)
	}
}

// float parses a finite float for key.
func (p *specParser) float(key, val string) float64 {
	v, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.err = fmt.Errorf("fl: option %s=%q: want a finite number", key, val)
		return 0
	}
	return v
}

// integer parses a non-negative integer below 2^31 for key.
func (p *specParser) integer(key, val string) int {
	v, err := strconv.ParseInt(val, 10, 32)
	if err != nil || v < 0 {
		p.err = fmt.Errorf("fl: option %s=%q: want a non-negative integer", key, val)
		return 0
	}
	return int(v)
}
