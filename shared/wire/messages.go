package wire

// Hello is the first message a client sends after the WebSocket opens.
// Any positive V parses, so that a server can answer a client of another
// version; the server compares it with Version.
type Hello struct {
	V             int      `json:"v"`              // protocol version the client speaks
	ClientID      string   `json:"client_id"`      // empty on first join; then the id from Welcome
	Secret        string   `json:"secret"`         // the secret from the first Welcome, proving ClientID
	Run           string   `json:"run"`            // run id the client wants to join; may be empty
	Token         string   `json:"token"`          // join token, if the run has one
	Device        Device   `json:"device"`         // what the client runs on
	Codecs        []string `json:"codecs"`         // pipelines the client can encode and decode
	ResumeVersion int64    `json:"resume_version"` // model version the client holds, 0 if none
}

// Device describes the machine a client runs on, as far as it can tell.
type Device struct {
	Kind      string  `json:"kind"`       // DeviceBrowser or DeviceHeadless
	UserAgent string  `json:"user_agent"` // navigator.userAgent or the headless client's name
	Platform  string  `json:"platform"`   // e.g. "Linux x86_64", "js/wasm"
	Cores     int     `json:"cores"`      // logical cores, 0 if unknown
	MemoryGB  float64 `json:"memory_gb"`  // device memory in GB, 0 if unknown
	Workers   int     `json:"workers"`    // training workers the client runs
	// Profile names the device profile the client emulates (package
	// profile), empty when it runs at its own speed.
	Profile string `json:"profile,omitempty"`
}

// Device kinds.
const (
	DeviceBrowser  = "browser"
	DeviceHeadless = "headless"
)

// Welcome is the server's answer to Hello: the client's id, the run's
// configuration and the client's data slice.
type Welcome struct {
	ClientID string `json:"client_id"`
	// Secret proves ClientID in later hellos. A newcomer gets it in its
	// first welcome and keeps it (a tab in localStorage); it is empty when
	// the hello already proved the id.
	Secret string       `json:"secret,omitempty"`
	Run    RunInfo      `json:"run"`
	Slice  SliceInfo    `json:"slice"`
	Limits UploadLimits `json:"limits"`
}

// RunInfo is a run's configuration as a client needs it.
type RunInfo struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Model       string  `json:"model"`
	Dataset     string  `json:"dataset"`
	Rounds      int     `json:"rounds"`
	LocalEpochs int     `json:"local_epochs"`
	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"`
	Momentum    float64 `json:"momentum"`
	WeightDecay float64 `json:"weight_decay"`
	Codec       string  `json:"codec"`      // upload pipeline
	DownCodec   string  `json:"down_codec"` // pipeline of the model sent down
	Strategy    string  `json:"strategy"`
	Mu          float64 `json:"mu"` // FedProx proximal term, 0 for none
	Seed        uint64  `json:"seed"`
	// Mode is "async" for FedBuff runs: a round is a server step, a task
	// outlives the step it was given in, and pages show model versions
	// and staleness instead of rounds. Empty or "sync": rounds.
	Mode   string `json:"mode,omitempty"`
	Buffer int    `json:"buffer,omitempty"` // async: updates per server step
}

// SliceInfo tells a client which part of the data set is its own.
type SliceInfo struct {
	Index       int    `json:"index"`
	Samples     int    `json:"samples"`
	LabelCounts []int  `json:"label_counts"`
	URL         string `json:"url"` // relative URL the slice is fetched from
}

// UploadLimits are the limits the server enforces on a client's uploads.
type UploadLimits struct {
	MaxUpdateBytes int `json:"max_update_bytes"`
}

// Wait tells a client that it has nothing to do for now, and why.
type Wait struct {
	Reason  string `json:"reason"`
	Round   int    `json:"round"`
	Clients int    `json:"clients"`
	Needed  int    `json:"needed"`
}

// RoundStart tells a selected client to train; the model follows as a
// binary frame.
type RoundStart struct {
	Round          int     `json:"round"`
	ModelVersion   int64   `json:"model_version"`
	DeadlineUnixMS int64   `json:"deadline_unix_ms"`
	Epochs         int     `json:"epochs"`
	Batch          int     `json:"batch"`
	LR             float64 `json:"lr"`
	Mu             float64 `json:"mu"`
	Seed           uint64  `json:"seed"` // for the client's shuffling, dropout and rounding
}

// Progress reports a client's training progress within a round.
type Progress struct {
	Round       int     `json:"round"`
	Epoch       int     `json:"epoch"`
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	Batches     int     `json:"batches"`
	Loss        float64 `json:"loss"`
	SamplesPerS float64 `json:"samples_per_s"`
}

// Decline tells the server that a selected client will send no update for
// a round, and why (for example: its training diverged to non-finite
// weights), so the round does not wait for it.
type Decline struct {
	Round  int    `json:"round"`
	Reason string `json:"reason"`
}

// Accepted tells a client that its update for a round was taken.
type Accepted struct {
	Round int `json:"round"`
	Bytes int `json:"bytes"` // size of the frame received
	// Staleness is how many server steps behind the model it joined the
	// update was trained (async runs; 0 otherwise).
	Staleness int `json:"staleness,omitempty"`
}

// Rejected tells a client that its update or request was refused.
type Rejected struct {
	Round  int    `json:"round"`
	Reason string `json:"reason"` // a sentence a person can read
	Code   string `json:"code"`   // short machine code, e.g. CodeLate
}

// RoundEnd announces the result of a round to every client.
type RoundEnd struct {
	Round        int     `json:"round"`
	TestAccuracy float64 `json:"test_accuracy"` // fraction in [0, 1]
	TestLoss     float64 `json:"test_loss"`
	Received     int     `json:"received"`
	Accepted     int     `json:"accepted"`
	ModelVersion int64   `json:"model_version"`
	// Async: this was a server step of an asynchronous run; tasks in
	// flight go on (their updates join a later step).
	Async bool `json:"async,omitempty"`
	// MeanStaleness is the step's mean update staleness (async).
	MeanStaleness float64 `json:"mean_staleness,omitempty"`
}

// RunEnd announces that a run is over.
type RunEnd struct {
	Reason        string  `json:"reason"`
	FinalAccuracy float64 `json:"final_accuracy"` // fraction in [0, 1]
}

// Bye announces that the sender closes the connection.
type Bye struct {
	Reason string `json:"reason"`
}

// Type returns "hello".
func (*Hello) Type() string { return "hello" }

// Type returns "welcome".
func (*Welcome) Type() string { return "welcome" }

// Type returns "wait".
func (*Wait) Type() string { return "wait" }

// Type returns "round_start".
func (*RoundStart) Type() string { return "round_start" }

// Type returns "progress".
func (*Progress) Type() string { return "progress" }

// Type returns "decline".
func (*Decline) Type() string { return "decline" }

// Type returns "accepted".
func (*Accepted) Type() string { return "accepted" }

// Type returns "rejected".
func (*Rejected) Type() string { return "rejected" }

// Type returns "round_end".
func (*RoundEnd) Type() string { return "round_end" }

// Type returns "run_end".
func (*RunEnd) Type() string { return "run_end" }

// Type returns "bye".
func (*Bye) Type() string { return "bye" }

// Validate checks every field of h against its bounds.
func (h *Hello) Validate() error {
	if err := firstErr(
		checkInt("hello.v", int64(h.V), 1, maxClaimedV),
		checkID("hello.client_id", h.ClientID, true),
		checkText("hello.secret", h.Secret, maxSecretLen),
		checkID("hello.run", h.Run, true),
		checkText("hello.token", h.Token, maxTextLen),
		checkInt("hello.resume_version", h.ResumeVersion, 0, maxVersion),
		h.Device.validate(),
	); err != nil {
		return err
	}
	if len(h.Codecs) > maxCodecs {
		return errorf(ErrMalformed, "wire: hello.codecs has %d entries; limit %d", len(h.Codecs), maxCodecs)
	}
	for _, c := range h.Codecs {
		if c == "" {
			return errorf(ErrMalformed, "wire: hello.codecs has an empty entry")
		}
		if err := checkText("hello.codecs", c, maxTextLen); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) validate() error {
	return firstErr(
		checkOneOf("hello.device.kind", d.Kind, DeviceBrowser, DeviceHeadless),
		checkText("hello.device.user_agent", d.UserAgent, maxAgentLen),
		checkText("hello.device.platform", d.Platform, maxIDLen),
		checkInt("hello.device.cores", int64(d.Cores), 0, maxCores),
		checkFloat("hello.device.memory_gb", d.MemoryGB, 0, maxMemoryGB),
		checkInt("hello.device.workers", int64(d.Workers), 0, maxWorkers),
		checkProfile("hello.device.profile", d.Profile),
	)
}

// Validate checks every field of w against its bounds; both codecs must
// parse as pipelines.
func (w *Welcome) Validate() error {
	r, s := &w.Run, &w.Slice
	if err := firstErr(
		checkID("welcome.client_id", w.ClientID, false),
		checkText("welcome.secret", w.Secret, maxSecretLen),
		checkID("welcome.run.id", r.ID, false),
		checkText("welcome.run.name", r.Name, maxTextLen),
		checkSpec("welcome.run.model", r.Model),
		checkID("welcome.run.dataset", r.Dataset, false),
		checkInt("welcome.run.rounds", int64(r.Rounds), 1, maxRounds),
		checkInt("welcome.run.local_epochs", int64(r.LocalEpochs), 1, maxEpochs),
		checkInt("welcome.run.batch", int64(r.Batch), 1, maxCount),
		checkFloat("welcome.run.lr", r.LR, 0, maxHyper),
		checkFloat("welcome.run.momentum", r.Momentum, 0, 1),
		checkFloat("welcome.run.weight_decay", r.WeightDecay, 0, maxHyper),
		checkPipeline("welcome.run.codec", r.Codec),
		checkPipeline("welcome.run.down_codec", r.DownCodec),
		checkSpec("welcome.run.strategy", r.Strategy),
		checkFloat("welcome.run.mu", r.Mu, 0, maxHyper),
		checkInt("welcome.slice.index", int64(s.Index), 0, maxCount),
		checkInt("welcome.slice.samples", int64(s.Samples), 0, maxCount),
		checkRelURL("welcome.slice.url", s.URL),
		checkInt("welcome.limits.max_update_bytes", int64(w.Limits.MaxUpdateBytes), 1, maxUpdateCap),
	); err != nil {
		return err
	}
	if len(s.LabelCounts) > maxLabels {
		return errorf(ErrMalformed, "wire: welcome.slice.label_counts has %d entries; limit %d", len(s.LabelCounts), maxLabels)
	}
	for _, c := range s.LabelCounts {
		if err := checkInt("welcome.slice.label_counts[]", int64(c), 0, maxCount); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks every field of w against its bounds.
func (w *Wait) Validate() error {
	return firstErr(
		checkText("wait.reason", w.Reason, maxTextLen),
		checkInt("wait.round", int64(w.Round), 0, maxRounds),
		checkInt("wait.clients", int64(w.Clients), 0, maxCount),
		checkInt("wait.needed", int64(w.Needed), 0, maxCount),
	)
}

// Validate checks every field of r against its bounds.
func (r *RoundStart) Validate() error {
	return firstErr(
		checkInt("round_start.round", int64(r.Round), 0, maxRounds),
		checkInt("round_start.model_version", r.ModelVersion, 0, maxVersion),
		checkInt("round_start.deadline_unix_ms", r.DeadlineUnixMS, 0, maxTimeMS),
		checkInt("round_start.epochs", int64(r.Epochs), 1, maxEpochs),
		checkInt("round_start.batch", int64(r.Batch), 1, maxCount),
		checkFloat("round_start.lr", r.LR, 0, maxHyper),
		checkFloat("round_start.mu", r.Mu, 0, maxHyper),
	)
}

// Validate checks every field of p against its bounds; epoch and batch may
// not exceed their totals.
func (p *Progress) Validate() error {
	return firstErr(
		checkInt("progress.round", int64(p.Round), 0, maxRounds),
		checkInt("progress.epochs", int64(p.Epochs), 1, maxEpochs),
		checkInt("progress.epoch", int64(p.Epoch), 0, int64(p.Epochs)),
		checkInt("progress.batches", int64(p.Batches), 0, maxCount),
		checkInt("progress.batch", int64(p.Batch), 0, int64(p.Batches)),
		checkFloat("progress.loss", p.Loss, 0, maxLoss),
		checkFloat("progress.samples_per_s", p.SamplesPerS, 0, maxRate),
	)
}

// Validate checks every field of d against its bounds.
func (d *Decline) Validate() error {
	return firstErr(
		checkInt("decline.round", int64(d.Round), 1, maxRounds),
		checkText("decline.reason", d.Reason, maxTextLen),
	)
}

// Validate checks every field of a against its bounds.
func (a *Accepted) Validate() error {
	return firstErr(
		checkInt("accepted.round", int64(a.Round), 0, maxRounds),
		checkInt("accepted.bytes", int64(a.Bytes), 0, maxCount),
	)
}

// Validate checks every field of r against its bounds.
func (r *Rejected) Validate() error {
	return firstErr(
		checkInt("rejected.round", int64(r.Round), 0, maxRounds),
		checkText("rejected.reason", r.Reason, maxTextLen),
		checkCode("rejected.code", r.Code),
	)
}

// Validate checks every field of r against its bounds.
func (r *RoundEnd) Validate() error {
	return firstErr(
		checkInt("round_end.round", int64(r.Round), 0, maxRounds),
		checkFloat("round_end.test_accuracy", r.TestAccuracy, 0, 1),
		checkFloat("round_end.test_loss", r.TestLoss, 0, maxLoss),
		checkInt("round_end.received", int64(r.Received), 0, maxCount),
		checkInt("round_end.accepted", int64(r.Accepted), 0, int64(r.Received)),
		checkInt("round_end.model_version", r.ModelVersion, 0, maxVersion),
	)
}

// Validate checks every field of r against its bounds.
func (r *RunEnd) Validate() error {
	return firstErr(
		checkText("run_end.reason", r.Reason, maxTextLen),
		checkFloat("run_end.final_accuracy", r.FinalAccuracy, 0, 1),
	)
}

// Validate checks every field of b against its bounds.
func (b *Bye) Validate() error {
	return checkText("bye.reason", b.Reason, maxTextLen)
}
