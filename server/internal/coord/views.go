package coord

import (
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/wire"
)

// RunView is a run's live state, for the API and dashboards.
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
	Clients      []ClientView `json:"clients"`
	Open         *RoundView   `json:"open_round,omitempty"`
}

// ClientView is a client's live state.
type ClientView struct {
	ID          string         `json:"id"`
	Slice       int            `json:"slice"`
	Kind        string         `json:"kind"`
	Device      wire.Device    `json:"device"`
	Connected   bool           `json:"connected"`
	State       string         `json:"state"` // offline, idle, training, answered
	FirstSeen   time.Time      `json:"first_seen"`
	LastSeen    time.Time      `json:"last_seen"`
	SamplesPerS float64        `json:"samples_per_s"`
	Progress    *wire.Progress `json:"progress,omitempty"`
	Updates     int            `json:"updates"`
	Accepted    int            `json:"accepted"`
	BytesUp     int64          `json:"bytes_up"`
	BytesDown   int64          `json:"bytes_down"`
}

// RoundView is a round's state or result.
type RoundView struct {
	Round        int                `json:"round"`
	StartedAt    time.Time          `json:"started_at"`
	Deadline     *time.Time         `json:"deadline,omitempty"`
	Selected     []string           `json:"selected"`
	Pending      int                `json:"pending"`
	Received     int                `json:"received"`
	Accepted     int                `json:"accepted"`
	BytesUp      int64              `json:"bytes_up"`
	BytesDown    int64              `json:"bytes_down"`
	ModelVersion int64              `json:"model_version,omitempty"`
	TestAccuracy float64            `json:"test_accuracy,omitempty"`
	TestLoss     float64            `json:"test_loss,omitempty"`
	Epsilon      *float64           `json:"epsilon,omitempty"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	Seconds      float64            `json:"seconds,omitempty"`
	Failed       string             `json:"failed,omitempty"`
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
}

// View returns the run's live state as of its last event.
func (r *Run) View() RunView { return *r.view.Load() }

// publishStatus refreshes the view and announces it as the run's status
// (after the status changed: the view must already say so, both in the
// event and for a caller the loop answers next, such as Stop's).
func (r *Run) publishStatus() {
	r.publishView()
	r.publish(EvRunStatus, r.View())
}

// publishView refreshes the state View returns (loop goroutine only).
func (r *Run) publishView() {
	v := &RunView{ID: r.id, Name: r.cfg.Name, Status: r.status, Config: r.cfg, Params: r.numParams,
		CreatedAt: r.created, Round: r.roundNo, ModelVersion: r.version, TestAccuracy: r.lastAcc}
	for _, id := range r.bySlice {
		if cl := r.clients[id]; cl != nil {
			v.Clients = append(v.Clients, r.clientView(cl))
			if cl.peer != nil {
				v.Connected++
			}
		}
	}
	switch {
	case r.status != StatusWaiting && r.status != StatusRunning:
		v.Phase = r.status
	case r.open != nil:
		v.Open = r.roundView(r.open, nil)
		v.Phase = "training"
	case v.Connected < r.cfg.MinClients || (r.roundNo == 0 && v.Connected < r.cfg.StartClients):
		v.Phase = "waiting for clients"
	default:
		v.Phase = "starting a round"
	}
	r.view.Store(v)
}

func (r *Run) clientView(cl *client) ClientView {
	v := ClientView{ID: cl.id, Slice: cl.slice, Kind: cl.kind, Device: cl.device, Connected: cl.peer != nil,
		FirstSeen: cl.firstSeen, LastSeen: cl.lastSeen, SamplesPerS: cl.speed, Progress: cl.progress,
		Updates: cl.updates, Accepted: cl.accepted, BytesUp: cl.bytesUp, BytesDown: cl.bytesDown, State: "offline"}
	if cl.peer != nil {
		v.State = "idle"
		if o := r.open; o != nil && o.selected[cl.id] {
			v.State = "training"
			if o.answered[cl.id] {
				v.State = "answered"
			}
		}
	}
	return v
}

func (r *Run) roundView(o *openRound, rr *roundResult) *RoundView {
	v := &RoundView{Round: o.n, StartedAt: o.started, Pending: len(o.pending), Received: o.received,
		Accepted: o.accepted, BytesUp: o.bytesUp, BytesDown: o.bytesDn}
	for _, id := range r.bySlice {
		if o.selected[id] {
			v.Selected = append(v.Selected, id)
		}
	}
	if !o.deadline.IsZero() {
		d := o.deadline
		v.Deadline = &d
	}
	if rr != nil {
		v.Failed, v.Seconds = rr.failed, r.c.deps.Now().Sub(o.started).Seconds()
		if rr.failed == "" {
			v.ModelVersion, v.TestAccuracy, v.TestLoss, v.Epsilon, v.Metrics = r.version, rr.acc, rr.loss, rr.epsilon, rr.metrics
			v.Verdicts = rr.verdicts
		}
	}
	return v
}

func updateView(u *store.Update, accepted bool) UpdateView {
	return UpdateView{Round: u.Round, Client: u.ClientID, Accepted: accepted, Reason: u.Reason, Code: u.Code,
		Bytes: u.Bytes, BytesDown: u.BytesDown, Samples: u.Samples, Loss: u.Loss, Accuracy: u.Accuracy, TrainMS: u.TrainMS, SamplesPerS: u.SamplesPerS}
}
