package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/nn"
)

// maxBody caps request bodies.
const maxBody = 64 << 10

// runJSON is a run as the API shows it: what the store holds, and the live
// state when the run is active in this process.
type runJSON struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Status       string          `json:"status"`
	Config       json.RawMessage `json:"config"`
	CreatedAt    time.Time       `json:"created_at"`
	StartedAt    *time.Time      `json:"started_at,omitempty"`
	FinishedAt   *time.Time      `json:"finished_at,omitempty"`
	CurrentRound int             `json:"current_round"`
	ModelVersion int             `json:"model_version"`
	Error        string          `json:"error,omitempty"`
	// JoinURL (a path with the join token) is shown to the admin, and to
	// everyone for a public run.
	JoinURL string         `json:"join_url,omitempty"`
	Live    *coord.RunView `json:"live,omitempty"`
}

func (s *Server) runJSON(sr *store.Run, admin bool) runJSON {
	j := runJSON{ID: sr.ID, Name: sr.Name, Status: sr.Status, Config: sr.Config, CreatedAt: sr.CreatedAt,
		StartedAt: timePtr(sr.StartedAt), FinishedAt: timePtr(sr.FinishedAt), CurrentRound: sr.CurrentRound,
		ModelVersion: sr.ModelVersion, Error: sr.Error}
	if r, err := s.c.Run(sr.ID); err == nil {
		v := r.View()
		j.Live = &v
		j.Status, j.CurrentRound, j.ModelVersion = v.Status, v.Round, int(v.ModelVersion)
		if admin || v.Config.Public {
			j.JoinURL = JoinPath(sr.ID, sr.JoinToken)
		}
	}
	return j
}

// JoinPath is the path of a run's join page, carrying its join token.
func JoinPath(run, token string) string {
	return "/join/" + url.PathEscape(run) + "?token=" + url.QueryEscape(token)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	type public struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Token   string `json:"token"`
		JoinURL string `json:"join_url"`
	}
	resp := struct {
		Server    string  `json:"server"`
		PublicRun *public `json:"public_run"`
		// Models lists the built-in models with their default learning
		// rate and batch size, for forms that leave them to the server.
		Models map[string]nn.Defaults `json:"models"`
	}{Server: "qflare", Models: nn.AllDefaults()}
	var newest *coord.Run
	for _, run := range s.c.Runs() {
		v := run.View()
		if v.Config.Public && (v.Status == coord.StatusWaiting || v.Status == coord.StatusRunning) &&
			(newest == nil || v.CreatedAt.After(newest.View().CreatedAt)) {
			newest = run
		}
	}
	if newest != nil {
		resp.PublicRun = &public{ID: newest.ID(), Name: newest.Config().Name, Token: newest.Token(), JoinURL: JoinPath(newest.ID(), newest.Token())}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	runs, err := s.st.Runs(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	admin := s.isAdmin(r)
	out := make([]runJSON, 0, len(runs))
	for i := range runs {
		out = append(out, s.runJSON(&runs[i], admin))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	sr, err := s.st.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.runJSON(sr, s.isAdmin(r)))
}

// decodeJSON reads a size-capped, strictly decoded JSON body into v.
func decodeJSON(r *http.Request, w http.ResponseWriter, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "send the body as application/json, not %s", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return errorf(http.StatusBadRequest, "empty body: send the run configuration as JSON")
		}
		return errorf(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "bad JSON body: more than one value")
	}
	return nil
}

func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	var cfg coord.Config
	if err := decodeJSON(r, w, &cfg); err != nil {
		s.fail(w, r, err)
		return
	}
	run, err := s.c.CreateRun(r.Context(), cfg)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sr, err := s.st.Run(r.Context(), run.ID())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("run created", "run", run.ID(), "model", cfg.Model, "rounds", cfg.Rounds)
	writeJSON(w, http.StatusCreated, s.runJSON(sr, true))
}

func (s *Server) stopRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.c.Run(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := run.Stop(ctx, "stopped through the API"); err != nil {
		s.fail(w, r, errorf(http.StatusConflict, "%v", err))
		return
	}
	sr, err := s.st.Run(r.Context(), run.ID())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.runJSON(sr, true))
}

// roundJSON is a stored round.
type roundJSON struct {
	Round        int             `json:"round"`
	Status       string          `json:"status"`
	StartedAt    time.Time       `json:"started_at"`
	DeadlineAt   *time.Time      `json:"deadline_at,omitempty"`
	FinishedAt   *time.Time      `json:"finished_at,omitempty"`
	Selected     []string        `json:"selected"`
	NSelected    int             `json:"n_selected"`
	NReceived    int             `json:"n_received"`
	NAccepted    int             `json:"n_accepted"`
	TestAccuracy float64         `json:"test_accuracy"`
	TestLoss     float64         `json:"test_loss"`
	BytesUp      int64           `json:"bytes_up"`
	BytesDown    int64           `json:"bytes_down"`
	Epsilon      *float64        `json:"epsilon,omitempty"`
	ModelVersion int             `json:"model_version"`
	Metrics      json.RawMessage `json:"metrics,omitempty"`
	Error        string          `json:"error,omitempty"`
}

func (s *Server) listRounds(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.st.Run(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	rounds, err := s.st.Rounds(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]roundJSON, 0, len(rounds))
	for _, x := range rounds {
		out = append(out, roundJSON{Round: x.Round, Status: x.Status, StartedAt: x.StartedAt, DeadlineAt: timePtr(x.DeadlineAt),
			FinishedAt: timePtr(x.FinishedAt), Selected: x.Selected, NSelected: x.NSelected, NReceived: x.NReceived,
			NAccepted: x.NAccepted, TestAccuracy: x.TestAccuracy, TestLoss: x.TestLoss, BytesUp: x.BytesUp,
			BytesDown: x.BytesDown, Epsilon: x.Epsilon, ModelVersion: x.ModelVersion, Metrics: x.Metrics, Error: x.Error})
	}
	writeJSON(w, http.StatusOK, out)
}

// clientJSON is a stored client, with its live state when connected.
type clientJSON struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Device      json.RawMessage   `json:"device,omitempty"`
	Slice       int               `json:"slice"`
	Samples     int               `json:"samples"`
	LabelCounts []int             `json:"label_counts"`
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
	Updates     int               `json:"updates"`
	Accepted    int               `json:"accepted"`
	BytesUp     int64             `json:"bytes_up"`
	BytesDown   int64             `json:"bytes_down"`
	SamplesPerS float64           `json:"samples_per_s"`
	Live        *coord.ClientView `json:"live,omitempty"`
}

func (s *Server) listClients(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.st.Run(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	clients, err := s.st.Clients(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	live := map[string]coord.ClientView{}
	if run, err := s.c.Run(id); err == nil {
		for _, cv := range run.View().Clients {
			live[cv.ID] = cv
		}
	}
	out := make([]clientJSON, 0, len(clients))
	for _, c := range clients {
		j := clientJSON{ID: c.ID, Kind: c.Kind, Device: c.Device, Slice: c.SliceIndex, Samples: c.Samples,
			LabelCounts: c.LabelCounts, FirstSeen: c.FirstSeen, LastSeen: c.LastSeen, Updates: c.Updates,
			Accepted: c.Accepted, BytesUp: c.BytesUp, BytesDown: c.BytesDown, SamplesPerS: c.SamplesPerS}
		if cv, ok := live[c.ID]; ok {
			j.Live = &cv
		}
		out = append(out, j)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slice < out[j].Slice })
	writeJSON(w, http.StatusOK, out)
}

// updateJSON is a stored update's metadata.
type updateJSON struct {
	ID          int64     `json:"id"`
	Round       int       `json:"round"`
	ClientID    string    `json:"client_id"`
	ReceivedAt  time.Time `json:"received_at"`
	Accepted    bool      `json:"accepted"`
	Reason      string    `json:"reason,omitempty"`
	Code        string    `json:"code,omitempty"`
	Samples     int       `json:"samples"`
	Bytes       int       `json:"bytes"`
	BytesDown   int       `json:"bytes_down"`
	Codec       string    `json:"codec"`
	BaseVersion int       `json:"base_version"`
	Loss        float64   `json:"loss"`
	Accuracy    float64   `json:"accuracy"`
	TrainMS     int64     `json:"train_ms"`
	SamplesPerS float64   `json:"samples_per_s"`
	Score       float64   `json:"score"`
	Cosine      float64   `json:"cosine"`
	NormRatio   float64   `json:"norm_ratio"`
	Excluded    bool      `json:"excluded"`
}

func (s *Server) listUpdates(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.st.Run(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	round := -1
	if q := r.URL.Query().Get("round"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			s.fail(w, r, errorf(http.StatusBadRequest, "round %q is not a positive integer", q))
			return
		}
		round = n
	}
	ups, err := s.st.Updates(r.Context(), id, round)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]updateJSON, 0, len(ups))
	for _, u := range ups {
		out = append(out, updateJSON{ID: u.ID, Round: u.Round, ClientID: u.ClientID, ReceivedAt: u.ReceivedAt,
			Accepted: u.Accepted, Reason: u.Reason, Code: u.Code, Samples: u.Samples, Bytes: u.Bytes, BytesDown: u.BytesDown, Codec: u.Codec,
			BaseVersion: u.BaseVersion, Loss: u.Loss, Accuracy: u.Accuracy, TrainMS: u.TrainMS, SamplesPerS: u.SamplesPerS,
			Score: u.Score, Cosine: u.Cosine, NormRatio: u.NormRatio, Excluded: u.Excluded})
	}
	writeJSON(w, http.StatusOK, out)
}
