package coord

import (
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/wire"
)

// RunView is a run's live state, for the API and dashboards. View returns
// it without Clients (cheap, refreshed after every event); Snapshot fills
// Clients too.
type RunView struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Status       string       `json:"status"`
	Phase        string       `json:"phase"`
	Config       Config       `json:"config"`
	Params       int          `json:"params"`
	CreatedAt    time.Time    `json:"created_at"`
	Round        int          `json:"round"`         // last round opened
	ModelVersion int64        `json:"model_version"` // rounds aggregated so far
	TestAccuracy float64      `json:"test_accuracy"` // of the latest model
	Connected    int          `json:"connected"`
	Known        int          `json:"known"` // clients that hold a slice
	Clients      []ClientView `json:"clients,omitempty"`
	Open         *RoundView   `json:"open_round,omitempty"`
}

// Client states in ClientView.State.
const (
	ClientOffline  = "offline"
	ClientIdle     = "idle"
	ClientTraining = "training"
	ClientAnswered = "answered"
)

// ClientView is a client's live state.
type ClientView struct {
	ID          string         `json:"id"`
	Slice       int            `json:"slice"`
	Samples     int            `json:"samples"`
	LabelCounts []int          `json:"label_counts,omitempty"`
	Kind        string         `json:"kind"`
	Device      wire.Device    `json:"device"`
	Connected   bool           `json:"connected"`
	State       string         `json:"state"` // ClientOffline, ClientIdle, ClientTraining or ClientAnswered
	FirstSeen   time.Time      `json:"first_seen"`
	LastSeen    time.Time      `json:"last_seen"`
	SamplesPerS float64        `json:"samples_per_s"`
	Progress    *wire.Progress `json:"progress,omitempty"`
	Updates     int            `json:"updates"`
	Accepted    int            `json:"accepted"`
	BytesUp     int64          `json:"bytes_up"`
	BytesDown   int64          `json:"bytes_down"`
	// Missed is how many rounds in a row the client was selected for and
	// did not answer; SkipUntil the last round it is passed over for.
	Missed    int `json:"missed,omitempty"`
	SkipUntil int `json:"skip_until,omitempty"`
	// Profile is the device profile the client emulates ("" for none).
	Profile string `json:"profile,omitempty"`
	// TaskRound and TaskVersion are the round and model version of the
	// task it holds, TaskAt when it got it (zero: none).
	TaskRound   int       `json:"task_round,omitempty"`
	TaskVersion int64     `json:"task_version,omitempty"`
	TaskAt      time.Time `json:"task_at,omitzero"`
}

// RoundView is a round's state or result.
type RoundView struct {
	Round        int                `json:"round"`
	ModelVersion int64              `json:"model_version,omitempty"` // the version it produced
	BaseVersion  int64              `json:"base_version"`            // the version it trains from
	StartedAt    time.Time          `json:"started_at"`
	Deadline     *time.Time         `json:"deadline,omitempty"`
	Selected     []string           `json:"selected"`
	Target       int                `json:"target"` // accepted updates that close it early (0: wait for all)
	Pending      int                `json:"pending"`
	Received     int                `json:"received"`
	Accepted     int                `json:"accepted"`
	BytesUp      int64              `json:"bytes_up"`
	BytesDown    int64              `json:"bytes_down"`
	TestAccuracy float64            `json:"test_accuracy,omitempty"`
	TestLoss     float64            `json:"test_loss,omitempty"`
	Epsilon      *float64           `json:"epsilon,omitempty"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	Seconds      float64            `json:"seconds,omitempty"`
	Why          string             `json:"why,omitempty"` // why it closed
	Failed       string             `json:"failed,omitempty"`
	// MeanStaleness and MaxStaleness (async) sum up how many steps behind
	// the buffer's updates were trained.
	MeanStaleness float64 `json:"mean_staleness,omitempty"`
	MaxStaleness  int     `json:"max_staleness,omitempty"`
	// LabelAccuracy is the new model's test accuracy on each label.
	LabelAccuracy []float64 `json:"label_accuracy,omitempty"`
	// Verdicts are the aggregator's judgement of each accepted update:
	// anomaly score, cosine to the round's median update, norm ratio, and
	// whether (and why) it was excluded.
	Verdicts []VerdictView `json:"verdicts,omitempty"`
}

// VerdictView is the aggregator's judgement of one update.
type VerdictView struct {
	Client    string  `json:"client"`
	Score     float64 `json:"score"`
	Cosine    float64 `json:"cosine"`
	NormRatio float64 `json:"norm_ratio"`
	Excluded  bool    `json:"excluded"`
	Reason    string  `json:"reason,omitempty"`
}

// UpdateView is one received update, accepted or not.
type UpdateView struct {
	ID          int64   `json:"id,omitempty"` // the stored row's id (0: not stored)
	Round       int     `json:"round"`
	Client      string  `json:"client"`
	Accepted    bool    `json:"accepted"`
	Reason      string  `json:"reason,omitempty"`
	Code        string  `json:"code,omitempty"`
	Bytes       int     `json:"bytes"`
	BytesDown   int     `json:"bytes_down"`
	Samples     int     `json:"samples"`
	Loss        float64 `json:"loss"`
	Accuracy    float64 `json:"accuracy"`
	TrainMS     int64   `json:"train_ms"`
	SamplesPerS float64 `json:"samples_per_s"`
	// BaseVersion is the model version it was trained from; Staleness how
	// many steps behind the model it joined that was (async).
	BaseVersion int       `json:"base_version"`
	Staleness   int       `json:"staleness"`
	Profile     string    `json:"profile,omitempty"`
	TaskAt      time.Time `json:"task_at,omitzero"`     // when its task was sent
	ReceivedAt  time.Time `json:"received_at,omitzero"` // when it arrived
}

func updateView(u *store.Update) *UpdateView {
	return &UpdateView{ID: u.ID, Round: u.Round, Client: u.ClientID, Accepted: u.Accepted, Reason: u.Reason, Code: u.Code,
		Bytes: u.Bytes, BytesDown: u.BytesDown, Samples: u.Samples, Loss: u.Loss, Accuracy: u.Accuracy,
		TrainMS: u.TrainMS, SamplesPerS: u.SamplesPerS, BaseVersion: u.BaseVersion, Staleness: u.Staleness,
		Profile: u.Profile, TaskAt: u.TaskAt, ReceivedAt: u.ReceivedAt}
}

// StoredView builds a finished (or unknown to this process) run's view from
// the store: what a dashboard shows of a run that is no longer live.
func StoredView(sr *store.Run, cfg Config) RunView {
	v := RunView{ID: sr.ID, Name: sr.Name, Status: sr.Status, Phase: sr.Status, Config: cfg, CreatedAt: sr.CreatedAt,
		Round: sr.CurrentRound, ModelVersion: int64(sr.ModelVersion)}
	return v
}
