package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
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
	// JoinURL (an absolute URL with the join token) is shown to the admin,
	// and to everyone for a public run.
	JoinURL string         `json:"join_url,omitempty"`
	Live    *coord.RunView `json:"live,omitempty"`
}

func (s *Server) runJSON(r *http.Request, sr *store.Run, admin bool) runJSON {
	j := runJSON{ID: sr.ID, Name: sr.Name, Status: sr.Status, Config: sr.Config, CreatedAt: sr.CreatedAt,
		StartedAt: timePtr(sr.StartedAt), FinishedAt: timePtr(sr.FinishedAt), CurrentRound: sr.CurrentRound,
		ModelVersion: sr.ModelVersion, Error: sr.Error}
	if run, err := s.c.Run(sr.ID); err == nil {
		v := run.View()
		j.Live = &v
		j.Status, j.CurrentRound, j.ModelVersion = v.Status, v.Round, int(v.ModelVersion)
		if admin || v.Config.Public {
			j.JoinURL = s.baseURL(r) + JoinPath(sr.ID, sr.JoinToken)
		}
	}
	return j
}

// baseURL is the URL clients reach the server at: --public-url, or the
// scheme and host the request came with.
func (s *Server) baseURL(r *http.Request) string {
	if s.opt.PublicURL != "" {
		return strings.TrimRight(s.opt.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
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
		PublicURL string  `json:"public_url,omitempty"` // serve --public-url
		PublicRun *public `json:"public_run"`
		// Models lists the built-in models with their default learning
		// rate and batch size, for forms that leave them to the server.
		Models map[string]nn.Defaults `json:"models"`
	}{Server: "qflare", PublicURL: s.opt.PublicURL, Models: nn.AllDefaults()}
	var newest *coord.Run
	for _, run := range s.c.Runs() {
		v := run.View()
		if v.Config.Public && (v.Status == coord.StatusWaiting || v.Status == coord.StatusRunning) &&
			(newest == nil || v.CreatedAt.After(newest.View().CreatedAt)) {
			newest = run
		}
	}
	if newest != nil {
		resp.PublicRun = &public{ID: newest.ID(), Name: newest.Config().Name, Token: newest.Token(),
			JoinURL: s.baseURL(r) + JoinPath(newest.ID(), newest.Token())}
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
		out = append(out, s.runJSON(r, &runs[i], admin))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	sr, err := s.st.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.runJSON(r, sr, s.isAdmin(r)))
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
	writeJSON(w, http.StatusCreated, s.runJSON(r, sr, true))
}

// stopRun stops a live run; a run that is over answers 409 at once.
func (s *Server) stopRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	sr, err := s.st.Run(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	run, err := s.c.Run(id)
	if err != nil {
		s.fail(w, r, errorf(http.StatusConflict, "run %s is already %s", id, sr.Status))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := run.Stop(ctx, "stopped through the API"); err != nil {
		s.fail(w, r, errorf(http.StatusConflict, "%v", err))
		return
	}
	if sr, err = s.st.Run(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.runJSON(r, sr, true))
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
	out := make([]clientJSON, 0, len(clients))
	index := map[string]int{}
	for _, c := range clients {
		if c.Released {
			continue
		}
		index[c.ID] = len(out)
		out = append(out, clientJSON{ID: c.ID, Kind: c.Kind, Device: c.Device, Slice: c.SliceIndex, Samples: c.Samples,
			LabelCounts: c.LabelCounts, FirstSeen: c.FirstSeen, LastSeen: c.LastSeen, Updates: c.Updates,
			Accepted: c.Accepted, BytesUp: c.BytesUp, BytesDown: c.BytesDown, SamplesPerS: c.SamplesPerS})
	}
	// A live run knows its clients first: one that joined a moment ago may
	// not be in the store yet, and the counters there lag by up to a round.
	if run, err := s.c.Run(id); err == nil {
		if v, err := run.Snapshot(r.Context()); err == nil {
			for _, cv := range v.Clients {
				i, ok := index[cv.ID]
				if !ok {
					dev, _ := json.Marshal(cv.Device)
					i = len(out)
					out = append(out, clientJSON{ID: cv.ID, Kind: cv.Kind, Device: dev, Slice: cv.Slice, Samples: cv.Samples,
						LabelCounts: cv.LabelCounts, FirstSeen: cv.FirstSeen})
				}
				j := &out[i]
				j.LastSeen, j.Updates, j.Accepted, j.BytesUp, j.BytesDown, j.SamplesPerS =
					cv.LastSeen, cv.Updates, cv.Accepted, cv.BytesUp, cv.BytesDown, cv.SamplesPerS
				live := cv
				j.Live = &live
			}
		}
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
	// Staleness (async), TaskAt (zero: unknown) and Profile let a page
	// draw each client's tasks on a timeline after the run.
	Staleness int       `json:"staleness"`
	TaskAt    time.Time `json:"task_at,omitzero"`
	Profile   string    `json:"profile,omitempty"`
}

// Update pages: GET /api/runs/{id}/updates returns defaultUpdatesPage
// updates unless ?limit=N (up to store.MaxUpdatesPage), oldest first from
// ?after=ID, or newest first with ?order=desc (from ?before=ID). When there
// may be more, a Link header names the next page (rel="next").
const defaultUpdatesPage = 500

func (s *Server) listUpdates(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.st.Run(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	num := func(name string, def, lo, hi int64) (int64, error) {
		v := q.Get(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return 0, errorf(http.StatusBadRequest, "%s %q is not an integer in %d..%d", name, v, lo, hi)
		}
		return n, nil
	}
	round, err1 := num("round", 0, 1, math.MaxInt32)
	after, err2 := num("after", 0, 0, math.MaxInt64)
	before, err3 := num("before", 0, 0, math.MaxInt64)
	limit, err4 := num("limit", defaultUpdatesPage, 1, store.MaxUpdatesPage)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	desc := false
	switch o := q.Get("order"); o {
	case "", "asc":
	case "desc":
		desc = true
	default:
		s.fail(w, r, errorf(http.StatusBadRequest, "order %q is not asc or desc", o))
		return
	}
	ups, err := s.st.UpdatesPage(r.Context(), id, int(round), after, before, int(limit), desc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]updateJSON, 0, len(ups))
	for _, u := range ups {
		out = append(out, updateJSON{ID: u.ID, Round: u.Round, ClientID: u.ClientID, ReceivedAt: u.ReceivedAt,
			Accepted: u.Accepted, Reason: u.Reason, Code: u.Code, Samples: u.Samples, Bytes: u.Bytes, BytesDown: u.BytesDown, Codec: u.Codec,
			BaseVersion: u.BaseVersion, Loss: u.Loss, Accuracy: u.Accuracy, TrainMS: u.TrainMS, SamplesPerS: u.SamplesPerS,
			Score: u.Score, Cosine: u.Cosine, NormRatio: u.NormRatio, Excluded: u.Excluded,
			Staleness: u.Staleness, TaskAt: u.TaskAt, Profile: u.Profile})
	}
	if len(ups) == int(limit) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		last := strconv.FormatInt(ups[len(ups)-1].ID, 10)
		if desc {
			next.Set("before", last)
		} else {
			next.Set("after", last)
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	writeJSON(w, http.StatusOK, out)
}
