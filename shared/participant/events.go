package participant

// Event types, in the order a round produces them.
const (
	EventState      = "state"       // State changed (connecting, joined, waiting, training, ...)
	EventWelcome    = "welcome"     // joined: ClientID; again with Model and Params once the model is built
	EventSlice      = "slice"       // data ready: Samples, LabelCounts
	EventWait       = "wait"        // nothing to do: Message says why
	EventRoundStart = "round_start" // selected for Round: trains ModelVersion
	EventDownload   = "download"    // global model received: Bytes
	EventProgress   = "progress"    // training: Epoch, Batch, Loss, SamplesPerS, ETASeconds
	EventEmulate    = "emulate"     // waiting as the emulated device would: Profile, Phase, WaitSeconds, Message
	EventUpload     = "upload"      // update sent: Bytes, LocalLoss, LocalAccuracy, SamplesPerS
	EventAccepted   = "accepted"    // update accepted: Staleness (async)
	EventRejected   = "rejected"    // update refused: Message, Code
	EventRoundEnd   = "round_end"   // round aggregated: TestAccuracy, TestLoss, ModelVersion
	EventRunEnd     = "run_end"     // run over: Message, TestAccuracy
	EventError      = "error"       // something failed: Message
)

// States a client passes through.
const (
	StateConnecting  = "connecting"
	StateJoined      = "joined"
	StateFetching    = "fetching data"
	StateWaiting     = "waiting"
	StateDownloading = "downloading model"
	StateTraining    = "training"
	StateUploading   = "uploading"
	StateDone        = "done"
	StateOffline     = "offline"
)

// Event reports what a client is doing, for a page or a log. Only the fields
// its Type names are set.
type Event struct {
	Type          string  `json:"type"`
	State         string  `json:"state,omitempty"`
	Round         int     `json:"round,omitempty"`
	Message       string  `json:"message,omitempty"`
	Code          string  `json:"code,omitempty"`
	Bytes         int     `json:"bytes,omitempty"`
	Epoch         int     `json:"epoch,omitempty"`
	Epochs        int     `json:"epochs,omitempty"`
	Batch         int     `json:"batch,omitempty"`
	Batches       int     `json:"batches,omitempty"`
	Loss          float64 `json:"loss,omitempty"`
	SamplesPerS   float64 `json:"samples_per_s,omitempty"`
	ETASeconds    float64 `json:"eta_s,omitempty"`
	LocalLoss     float64 `json:"local_loss,omitempty"`
	LocalAccuracy float64 `json:"local_accuracy,omitempty"`
	TestAccuracy  float64 `json:"test_accuracy,omitempty"`
	TestLoss      float64 `json:"test_loss,omitempty"`
	Samples       int     `json:"samples,omitempty"`
	LabelCounts   []int   `json:"label_counts,omitempty"`
	ClientID      string  `json:"client_id,omitempty"`
	Secret        string  `json:"secret,omitempty"` // with ClientID: keep it to rejoin as this client
	Model         string  `json:"model,omitempty"`
	Params        int     `json:"params,omitempty"`
	Rounds        int     `json:"rounds,omitempty"`
	Local         bool    `json:"local_data,omitempty"` // training on the person's own data
	Profile       string  `json:"profile,omitempty"`    // the emulated device profile
	Phase         string  `json:"phase,omitempty"`      // PhaseDownload, PhaseCompute or PhaseUpload
	WaitSeconds   float64 `json:"wait_s,omitempty"`     // how long the emulated device still takes
	// ModelVersion is the global model version a round trains from
	// (round_start) or produced (round_end); an async run's page shows it
	// instead of the round.
	ModelVersion int64 `json:"model_version,omitempty"`
	// Staleness is how many server steps behind the model it joined an
	// accepted update was trained (async runs).
	Staleness int `json:"staleness,omitempty"`
}
