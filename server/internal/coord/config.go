package coord

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

// ErrBadConfig wraps every error Normalize returns for a configuration that
// cannot run.
var ErrBadConfig = errors.New("coord: bad run configuration")

// Duration is a time.Duration that reads and writes JSON as "90s", "2m".
type Duration time.Duration

// MarshalJSON writes the duration as a string like "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "90s"-style strings or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("coord: bad duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil || math.IsNaN(secs) || math.Abs(secs) > 1e9 {
		return fmt.Errorf("coord: duration must be a string like \"90s\" or a number of seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Config is a run's configuration: the body of POST /api/runs, stored as
// JSON in runs.config. Zero fields take the defaults Normalize documents.
type Config struct {
	Name      string `json:"name"`
	Model     string `json:"model"`     // default "mnist-2nn"
	Dataset   string `json:"dataset"`   // default "mnist"
	Partition string `json:"partition"` // iid (default), dirichlet:ALPHA, shards:K
	// Clients is the number of data slices the training set is cut into:
	// at most this many clients can join. Default 100.
	Clients int `json:"clients"`
	// Rounds is the number of aggregated rounds the run trains for. Default 20.
	Rounds int `json:"rounds"`
	// ClientsPerRound, when > 0, fixes how many clients a round selects;
	// otherwise Fraction of the connected clients (at least MinClients).
	ClientsPerRound int     `json:"clients_per_round"`
	Fraction        float64 `json:"fraction"` // default 0.1
	// MinClients is how many connected clients a round needs to start, and
	// the fewest it selects. Default 2.
	MinClients int `json:"min_clients"`
	// StartClients is how many clients must be connected before the first
	// round starts (default MinClients), so a run can wait for a full room.
	StartClients int     `json:"start_clients"`
	LocalEpochs  int     `json:"local_epochs"`
	Batch        int     `json:"batch"`
	LR           float64 `json:"lr"`
	Momentum     float64 `json:"momentum"`
	WeightDecay  float64 `json:"weight_decay"`
	// RoundDeadline is how long a round waits for updates; 0 = until every
	// selected client answered or left. Default 120s.
	RoundDeadline Duration `json:"round_deadline"`
	Codec         string   `json:"codec"`      // upload pipeline, default float32+zstd
	DownCodec     string   `json:"down_codec"` // model pipeline, default float32+zstd
	Strategy      string   `json:"strategy"`   // default fedavg; e.g. trimmed-mean:0.2, multi-krum:2, fedadam,eta=0.01
	// Detect scores every update (cosine similarity to the round's
	// coordinate-wise median, norm ratio) and excludes outliers, recording
	// why. It buffers the round's updates. Unset: on for public runs, off
	// otherwise.
	Detect *bool `json:"detect,omitempty"`
	// DetectThreshold is the anomaly score above which an update is
	// excluded (0 = the default, 3.5).
	DetectThreshold float64 `json:"detect_threshold"`
	// DP turns on user-level DP-FedAvg: clipping and Gaussian noise, with
	// epsilon reported after every round.
	DP   *DPSettings `json:"dp,omitempty"`
	Mu   float64     `json:"mu"` // FedProx proximal coefficient
	Seed uint64      `json:"seed"`
	// EvalLimit evaluates each round on the first EvalLimit test images
	// (0 = all).
	EvalLimit int `json:"eval_limit"`
	// MaxUpdateNorm rejects updates whose L2 norm exceeds it (0 = no
	// limit; public runs default to PublicMaxUpdateNorm).
	MaxUpdateNorm float64 `json:"max_update_norm"`
	// OverSelect ≥ 1 selects that many times the clients a round needs and
	// closes the round as soon as the needed number of updates is in (the
	// rest are told the round is over). Default 1: wait for every selected
	// client.
	OverSelect float64 `json:"over_select,omitempty"`
	// SliceGrace is how long a client may stay away before its data slice
	// returns to the pool for newcomers (it then rejoins as a new client).
	// Default 10m.
	SliceGrace Duration `json:"slice_grace,omitempty"`
	// MaxFailedRounds ends the run (status failed) after that many rounds
	// in a row produced no model, e.g. because every update was refused or
	// the model diverged. Default 10.
	MaxFailedRounds int `json:"max_failed_rounds"`
	// KeepBlobs keeps every update's payload after its round (default: the
	// payload is dropped once the round is aggregated).
	KeepBlobs bool `json:"keep_blobs"`
	// Public lets anyone who opens the server's root URL join the run
	// without the join link (the demo run is public).
	Public bool `json:"public"`
	// NoDeadline makes RoundDeadline 0 mean "no deadline" rather than the
	// default; set by simulations.
	NoDeadline bool `json:"no_deadline,omitempty"`

	// Mode is how rounds go: "sync" (the default: select clients, wait
	// for them, aggregate) or "async" (FedBuff: clients train from the
	// version they last received, and the server takes a step every Buffer
	// updates). In async mode a round is one server step, Rounds the
	// number of steps, and RoundDeadline the time each task may take.
	Mode string `json:"mode,omitempty"`
	// Buffer is FedBuff's K, the updates per server step (async; default
	// 10).
	Buffer int `json:"buffer,omitempty"`
	// Concurrency is how many clients train at once (async; default
	// 2×Buffer).
	Concurrency int `json:"concurrency,omitempty"`
	// Staleness weights an update τ steps stale (async): "sqrt" for
	// 1/sqrt(1+τ) (the default), "constant", or "hinge:A,B" for 1 up to
	// τ = B and 1/(1+A(τ−B)) after.
	Staleness string `json:"staleness,omitempty"`
	// StalenessNorm is what a step's staleness-weighted sum of updates is
	// divided by (async): "samples" (the default) for the buffer's sample
	// total, as in the FedBuff paper, so that stale updates shrink the
	// step, or "weights" for the total of the samples times their
	// staleness weights, so that the step is a weighted mean and the
	// weights only say how much each update counts against the others
	// (see README, "The lab"). The robust strategies and DP, which do not
	// weight by sample count, multiply each delta by its weight either
	// way.
	StalenessNorm string `json:"staleness_norm,omitempty"`
	// MaxStaleness refuses updates more than that many steps stale
	// (async; default 32).
	MaxStaleness int `json:"max_staleness,omitempty"`
	// ServerLR is the server learning rate, the step the aggregate moves
	// the model by (default: the strategy's own, 1 for fedavg); the same
	// as the strategy option eta.
	ServerLR float64 `json:"server_lr,omitempty"`
	// Selection is how clients are picked for work: "random" (the
	// default), "deadline" (skip clients whose measured speed cannot
	// finish before the deadline) or "utility" (Oort-style: prefer
	// clients whose data still teaches the model much and who answer
	// fast, with exploration and an ageing bonus so that slow clients
	// keep contributing).
	Selection string `json:"selection,omitempty"`
	// SecureAgg, when set, aggregates every round securely: the server
	// learns only the sum of the updates (secagg_config.go).
	SecureAgg *SecureAggSettings `json:"secure_agg,omitempty"`
}

// Modes and selections.
const (
	ModeSync  = "sync"
	ModeAsync = "async"

	StaleNormWeights = "weights"
	StaleNormSamples = "samples"

	SelectRandom   = "random"
	SelectDeadline = "deadline"
	SelectUtility  = "utility"
)

// Async reports whether the run uses asynchronous buffered steps.
func (c *Config) Async() bool { return c.Mode == ModeAsync }

// DPSettings configure user-level differential privacy (DP-FedAvg).
type DPSettings struct {
	NoiseMultiplier float64 `json:"noise_multiplier"` // z: noise std is z·clip/(clients per round)
	ClipNorm        float64 `json:"clip_norm"`        // L2 bound on each update (initial bound when adaptive)
	Delta           float64 `json:"delta"`            // epsilon is reported at this delta (default 1e-5)
	TargetQuantile  float64 `json:"target_quantile"`  // adaptive clipping toward this quantile of norms (0 = fixed clip)
}

// etaStrategies take a server learning rate.
var etaStrategies = map[string]bool{"fedavg": true, "fedprox": true, "fedavgm": true, "fedadam": true, "fedyogi": true, "fedadagrad": true}

// ExpectedPerRound is the number of clients a round is expected to select
// when every client is connected: the DP accountant's q·N.
func (c *Config) ExpectedPerRound() int {
	if c.ClientsPerRound > 0 {
		return c.ClientsPerRound
	}
	return min(c.Clients, max(int(math.Ceil(c.Fraction*float64(c.Clients))), c.MinClients))
}

// NewStrategy builds the configuration's aggregation strategy, with
// detection and DP when asked for.
func (c *Config) NewStrategy() (fl.Strategy, error) {
	name, opts, err := fl.ParseSpec(c.Strategy)
	if err != nil {
		return nil, err
	}
	if c.ServerLR > 0 {
		if _, ok := etaStrategies[name]; !ok {
			return nil, fmt.Errorf("server_lr: strategy %s takes no server learning rate", name)
		}
		if opts.ServerLR != 0 && opts.ServerLR != c.ServerLR {
			return nil, fmt.Errorf("server_lr %g differs from the strategy's eta %g", c.ServerLR, opts.ServerLR)
		}
		opts.ServerLR = c.ServerLR
	}
	if name == "fedprox" && opts.Mu == 0 {
		opts.Mu = c.Mu // "mu" in the configuration, unless the spec names one
	}
	if c.Detect != nil && *c.Detect {
		opts.Detect, opts.DetectThreshold = true, c.DetectThreshold
	}
	if d := c.DP; d != nil {
		opts.DP = &fl.DPConfig{ClipNorm: d.ClipNorm, NoiseMultiplier: d.NoiseMultiplier, Delta: d.Delta,
			TargetQuantile: d.TargetQuantile, ClientsPerRound: c.ExpectedPerRound(), TotalClients: c.Clients}
		if c.Async() {
			opts.DP.ClientsPerRound = min(c.Buffer, c.Clients) // one update per client and step (see README)
		}
		// Seed 0: the noise comes from a secret random seed; a seed derived
		// from the run's would make it predictable.
	}
	return fl.New(name, opts)
}

// PublicMaxUpdateNorm is the update norm bound a public run gets when its
// configuration sets none: about 100 times the largest norm an honest
// client's update reaches in the demo's models (see README), so it never
// refuses an honest update and always refuses the non-finite-scale
// poisoning a stranger can send.
const PublicMaxUpdateNorm = 1000

// DefaultSliceGrace is how long a departed client keeps its data slice.
const DefaultSliceGrace = 10 * time.Minute

// Limits on configurations, so that a request cannot ask for absurd work.
const (
	maxClients = 100_000
	maxRounds  = 100_000
	maxEpochs  = 100
	maxBatch   = 4096
	maxName    = 100
	// maxStaleness bounds max_staleness: the server keeps every model
	// version an in-flight task trains from.
	maxStaleness = 1000
)

// Normalize fills defaults and validates c, returning an error a person can
// act on.
func (c *Config) Normalize() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Model == "" {
		c.Model = "mnist-2nn"
	}
	if c.Dataset == "" {
		c.Dataset = "mnist"
	}
	if c.Partition == "" {
		c.Partition = "iid"
	}
	if c.Name == "" {
		c.Name = c.Model + " on " + c.Dataset
	}
	def(&c.Clients, 100)
	def(&c.Rounds, 20)
	def(&c.MinClients, 2)
	def(&c.StartClients, c.MinClients)
	def(&c.LocalEpochs, 1)
	def(&c.Batch, nn.DefaultsFor(c.Model).Batch)
	def(&c.MaxFailedRounds, 10)
	if c.Fraction == 0 {
		c.Fraction = 0.1
	}
	if c.LR == 0 {
		c.LR = nn.DefaultsFor(c.Model).LR
	}
	if c.RoundDeadline == 0 && !c.NoDeadline {
		c.RoundDeadline = Duration(120 * time.Second)
	}
	if c.Codec == "" {
		c.Codec = "float32+zstd"
	}
	if c.DownCodec == "" {
		c.DownCodec = "float32+zstd"
	}
	if c.Strategy == "" {
		c.Strategy = "fedavg"
	}
	if c.OverSelect == 0 {
		c.OverSelect = 1
	}
	if c.SliceGrace == 0 {
		c.SliceGrace = Duration(DefaultSliceGrace)
	}
	c.SecureAgg.normalize() // secure aggregation's defaults (secagg_config.go)
	// Public runs (anyone who opens the server's URL joins) are defended by
	// default: a norm bound and anomaly detection. A run that is not public
	// keeps exactly what its creator chose. A secure run cannot see updates
	// to bound or score them: it clips each coordinate instead.
	if c.Public && c.SecureAgg == nil {
		if c.MaxUpdateNorm == 0 {
			c.MaxUpdateNorm = PublicMaxUpdateNorm
		}
		if c.Detect == nil {
			c.Detect = new(true)
		}
	}
	if c.Detect == nil {
		c.Detect = new(false)
	}
	if c.Mode == "" {
		c.Mode = ModeSync
	}
	if c.Selection == "" {
		c.Selection = SelectRandom
	}
	if c.Async() {
		def(&c.Buffer, 10)
		def(&c.Concurrency, 2*c.Buffer)
		def(&c.MaxStaleness, 32)
		if c.Staleness == "" {
			c.Staleness = "sqrt"
		}
		if c.StalenessNorm == "" {
			c.StalenessNorm = StaleNormSamples
		}
	}
	return c.validate()
}

// Same reports whether c and o configure the same run (pointer fields
// compared by what they point at).
func (c Config) Same(o Config) bool { return reflect.DeepEqual(c, o) }

// Detecting reports whether the run scores and excludes anomalous updates.
func (c *Config) Detecting() bool { return c.Detect != nil && *c.Detect }

func (c *Config) validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(c.Name) > maxName {
		bad("name is longer than %d characters", maxName)
	}
	if _, _, err := InputShape(c.Dataset); err != nil {
		bad("%v", err)
	} else if _, err := NewModel(*c); err != nil {
		bad("model: %v", err)
	} else if n := trainSize[c.Dataset]; c.Clients > n {
		bad("clients %d: %s has only %d training samples to share out", c.Clients, c.Dataset, n)
	}
	if _, err := data.ParseScheme(c.Partition); err != nil {
		bad("partition: %v", err)
	}
	if c.Clients < 1 || c.Clients > maxClients {
		bad("clients %d is not in 1..%d", c.Clients, maxClients)
	}
	if c.Rounds < 1 || c.Rounds > maxRounds {
		bad("rounds %d is not in 1..%d", c.Rounds, maxRounds)
	}
	if c.ClientsPerRound < 0 || c.ClientsPerRound > c.Clients {
		bad("clients_per_round %d is not in 0..clients (%d)", c.ClientsPerRound, c.Clients)
	}
	if !(c.Fraction > 0 && c.Fraction <= 1) {
		bad("fraction %g is not in (0, 1]", c.Fraction)
	}
	if c.MinClients < 1 || c.MinClients > c.Clients {
		bad("min_clients %d is not in 1..clients (%d)", c.MinClients, c.Clients)
	}
	if c.StartClients < c.MinClients || c.StartClients > c.Clients {
		bad("start_clients %d is not in min_clients (%d)..clients (%d)", c.StartClients, c.MinClients, c.Clients)
	}
	if c.LocalEpochs < 1 || c.LocalEpochs > maxEpochs {
		bad("local_epochs %d is not in 1..%d", c.LocalEpochs, maxEpochs)
	}
	if c.Batch < 1 || c.Batch > maxBatch {
		bad("batch %d is not in 1..%d", c.Batch, maxBatch)
	}
	if !(c.LR > 0 && c.LR <= 10) {
		bad("lr %g is not in (0, 10]", c.LR)
	}
	if !(c.Momentum >= 0 && c.Momentum < 1) || !(c.WeightDecay >= 0 && c.WeightDecay < 1) {
		bad("momentum %g and weight_decay %g must be in [0, 1)", c.Momentum, c.WeightDecay)
	}
	if !(c.Mu >= 0 && c.Mu <= 100) {
		bad("mu %g is not in [0, 100]", c.Mu)
	}
	if c.RoundDeadline < 0 || time.Duration(c.RoundDeadline) > 24*time.Hour {
		bad("round_deadline %v is not in 0..24h", time.Duration(c.RoundDeadline))
	}
	for _, p := range []struct{ name, v string }{{"codec", c.Codec}, {"down_codec", c.DownCodec}} {
		if _, err := wire.ParsePipeline(p.v); err != nil {
			bad("%s: %v", p.name, err)
		}
	}
	if _, err := c.NewStrategy(); err != nil {
		bad("strategy: %v", err)
	}
	if c.MaxFailedRounds < 1 || c.MaxFailedRounds > maxRounds {
		bad("max_failed_rounds %d is not in 1..%d", c.MaxFailedRounds, maxRounds)
	}
	if c.EvalLimit < 0 {
		bad("eval_limit %d is negative", c.EvalLimit)
	}
	if !(c.MaxUpdateNorm >= 0) || math.IsInf(c.MaxUpdateNorm, 0) {
		bad("max_update_norm %g must be a finite number ≥ 0", c.MaxUpdateNorm)
	}
	if !(c.OverSelect >= 1 && c.OverSelect <= 4) {
		bad("over_select %g is not in [1, 4]", c.OverSelect)
	}
	if g := time.Duration(c.SliceGrace); g < time.Second || g > 7*24*time.Hour {
		bad("slice_grace %v is not in 1s..168h", g)
	}
	switch c.Mode {
	case ModeSync:
		if c.Buffer != 0 || c.Concurrency != 0 || c.Staleness != "" || c.StalenessNorm != "" || c.MaxStaleness != 0 {
			bad("buffer, concurrency, staleness, staleness_norm and max_staleness are settings of mode async")
		}
	case ModeAsync:
		if c.Buffer < 1 || c.Buffer > maxClients {
			bad("buffer %d is not in 1..%d", c.Buffer, maxClients)
		}
		if c.Concurrency < 1 || c.Concurrency > c.Clients {
			bad("concurrency %d is not in 1..clients (%d)", c.Concurrency, c.Clients)
		}
		if _, err := ParseStaleness(c.Staleness); err != nil {
			bad("%v", err)
		}
		if c.StalenessNorm != StaleNormWeights && c.StalenessNorm != StaleNormSamples {
			bad("staleness_norm %q is not weights or samples", c.StalenessNorm)
		}
		if c.MaxStaleness < 1 || c.MaxStaleness > maxStaleness {
			bad("max_staleness %d is not in 1..%d", c.MaxStaleness, maxStaleness)
		}
		if c.OverSelect != 1 {
			bad("over_select is a setting of mode sync (async closes a step every buffer updates)")
		}
	default:
		bad("mode %q is not sync or async", c.Mode)
	}
	switch c.Selection {
	case SelectRandom, SelectUtility:
	case SelectDeadline:
		if c.RoundDeadline == 0 {
			bad("selection deadline needs a round_deadline")
		}
	default:
		bad("selection %q is not random, deadline or utility", c.Selection)
	}
	if !(c.ServerLR >= 0 && c.ServerLR <= 100) {
		bad("server_lr %g is not in [0, 100]", c.ServerLR)
	}
	c.validateSecure(bad) // secure aggregation (secagg_config.go)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrBadConfig, strings.Join(errs, "; "))
	}
	return nil
}

// trainSize is the number of training samples of each dataset.
var trainSize = map[string]int{"mnist": 60000, "cifar10": 50000}

// InputShape returns the sample shape and class count of a dataset name.
func InputShape(dataset string) (nn.Shape, int, error) {
	switch dataset {
	case "mnist":
		return nn.Shape{H: 28, W: 28, C: 1}, 10, nil
	case "cifar10":
		return nn.Shape{H: 32, W: 32, C: 3}, 10, nil
	}
	return nn.Shape{}, 0, fmt.Errorf("coord: dataset %q is not one of mnist, cifar10", dataset)
}

// NewModel builds the (seed-initialised) model a configuration names,
// without loading its dataset: for validation and for exporting stored
// weights under their tensor names.
func NewModel(cfg Config) (*nn.Model, error) {
	shape, classes, err := InputShape(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	return nn.New(cfg.Model, shape, classes, cfg.Seed)
}
