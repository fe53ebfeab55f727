package coord

import (
	"math"
	"time"

	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/secagg"
	"github.com/qflare/qflare/shared/wire"
)

// SecureAggSettings configure secure aggregation (package secagg): the
// server learns only the sum of each round's updates. Zero fields take the
// defaults below.
type SecureAggSettings struct {
	// Threshold is the fraction of a member's share holders (its
	// neighbours and itself) that must survive to recover its secrets, in
	// (0.5, 1]. Default 2/3.
	Threshold float64 `json:"threshold"`
	// Graph is "complete" (Bonawitz et al.; the default) or "k:K", a random
	// K-regular graph (SecAgg+, Bell et al.): a client's cost then grows
	// with K rather than with the round's size.
	Graph string `json:"graph"`
	// Clip bounds every coordinate of an update to [-clip, clip] before it
	// is quantized. Default 1.
	Clip float64 `json:"clip"`
	// Bits is the modulus of the masked sums, Z_2^bits; 32, the default,
	// is the only one.
	Bits int `json:"bits"`
	// PhaseTimeout is how long the key, share and unmask phases wait for
	// members (the masked-input phase waits for the round's deadline).
	// Default 30s.
	PhaseTimeout Duration `json:"phase_timeout,omitempty"`
}

// Defaults of SecureAggSettings.
const (
	DefaultSecureThreshold = 2.0 / 3
	DefaultSecureClip      = 1
	DefaultPhaseTimeout    = 30 * time.Second
)

func (s *SecureAggSettings) normalize() {
	if s == nil {
		return
	}
	if s.Threshold == 0 {
		s.Threshold = DefaultSecureThreshold
	}
	if s.Graph == "" {
		s.Graph = "complete"
	}
	if s.Clip == 0 {
		s.Clip = DefaultSecureClip
	}
	if s.Bits == 0 {
		s.Bits = secagg.Bits
	}
	if s.PhaseTimeout == 0 {
		s.PhaseTimeout = Duration(DefaultPhaseTimeout)
	}
}

// validateSecure adds to bad what makes a secure aggregation configuration
// unusable: its own settings, and everything that needs individual updates
// (the server never sees them).
func (c *Config) validateSecure(bad func(string, ...any)) {
	s := c.SecureAgg
	if s == nil {
		return
	}
	if !(s.Threshold > 0.5 && s.Threshold <= 1) {
		bad("secure_agg.threshold %g is not in (0.5, 1]: below a half, the server could learn a member's two secrets", s.Threshold)
	}
	if _, err := secagg.ParseGraph(s.Graph); err != nil {
		bad("secure_agg.graph: %v", err)
	}
	if s.Bits != secagg.Bits {
		bad("secure_agg.bits %d: only %d (masking in Z_2^32) is supported", s.Bits, secagg.Bits)
	}
	if !(s.Clip > 0) || math.IsInf(s.Clip, 0) {
		bad("secure_agg.clip %g must be a finite number > 0", s.Clip)
	} else if _, err := secagg.Exponent(min(c.Clients, wire.MaxSecAggMembers), s.Clip); err != nil {
		bad("secure_agg.clip: %v", err)
	}
	if d := time.Duration(s.PhaseTimeout); d < time.Second || d > time.Hour {
		bad("secure_agg.phase_timeout %v is not in 1s..1h", d)
	}
	name, opts, err := fl.ParseSpec(c.Strategy)
	switch {
	case err != nil:
		// validate reports the strategy itself.
	case c.Detecting() || opts.Detect:
		bad("secure_agg: anomaly detection (detect) needs individual updates, which secure aggregation hides from the server; turn one of them off")
	case c.DP != nil || opts.DP != nil:
		bad("secure_agg: central DP noise cannot be added to updates the server never sees; differential privacy is unavailable with secure aggregation (see README, Secure aggregation)")
	case name == "krum" || name == "multi-krum" || name == "trimmed-mean" || name == "median":
		bad("secure_agg: strategy %s needs individual updates, which secure aggregation hides; use a mean-based strategy (fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad)", name)
	}
	if c.MaxUpdateNorm > 0 {
		bad("secure_agg: max_update_norm cannot be checked on masked updates; secure aggregation clips every coordinate to secure_agg.clip instead")
	}
	if c.OverSelect > 1 {
		bad("secure_agg: over_select does not apply: a secure round needs the masked inputs of the members it started with")
	}
	if c.Async() {
		bad("secure_agg: mode async is not supported: FedBuff folds each update as it arrives, from clients on different model versions, but masks cancel only in the sum of a round whose members were fixed together; use mode sync")
	}
}

// secureInfo is what a client learns of the run's secure aggregation.
func (sp *spec) secureInfo() *wire.SecureAggInfo {
	s := sp.cfg.SecureAgg
	if s == nil {
		return nil
	}
	return &wire.SecureAggInfo{Threshold: s.Threshold, Graph: s.Graph, Clip: s.Clip, Bits: s.Bits, MaxWeight: sp.maxSamples}
}

// secureFrameLimit is the largest secure aggregation message a client of
// a run of numParams parameters may send: its masked input, or its sealed
// envelopes for up to members−1 neighbours (0 without secure aggregation).
func secureFrameLimit(c *Config, numParams int) int {
	if c.SecureAgg == nil {
		return 0
	}
	n := min(c.Clients, wire.MaxSecAggMembers)
	envelopes := 64 + n*(5+wire.SealedSharesSize+wire.SealedSeedSize)
	return max(envelopes, 64+4*(numParams+1))
}
