package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/sim"
	"github.com/qflare/qflare/shared/nn"
)

// Bounds of the seed system's one-round endpoint.
const (
	maxBody             = 64 << 10
	maxSeedParticipants = 100
	maxSeedEpochs       = 5
	seedTimeout         = 10 * time.Minute
	seedModel           = "mnist-2nn"
)

// seedResult is the answer of POST /api/fl/run_real_training.
type seedResult struct {
	Status         string  `json:"status"`
	RunID          string  `json:"run_id"`
	Round          int     `json:"round"`
	Participants   int     `json:"participants"`
	Accepted       int     `json:"accepted"`
	GlobalAccuracy float64 `json:"global_accuracy"`
	GlobalLoss     float64 `json:"global_loss"`
	LocalEpochs    int     `json:"local_epochs"`
	LearningRate   float64 `json:"learning_rate"`
	BatchSize      int     `json:"batch_size"`
	BytesUp        int64   `json:"bytes_up"`
	BytesDown      int64   `json:"bytes_down"`
	Seconds        float64 `json:"seconds"`
}

// runRealTraining is the seed system's endpoint: form fields
// target_participants, local_epochs, learning_rate, batch_size. It runs one
// complete FedAvg round of mnist-2nn with that many in-process participants
// (each holding one of 100 IID slices of MNIST, as in McMahan et al.)
// through the coordinator, stores it like any run, and returns the round's
// global test accuracy and loss. One runs at a time.
//
// It lives in package main, not in the API package, because it runs the
// simulator: main wires it in (api.Options.Routes), and the HTTP layer does
// not depend on sim.
type seedHandler struct {
	c  *coord.Coordinator
	mu sync.Mutex // one run at a time
}

func (s *seedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		fail(w, badRequest(fmt.Sprintf("bad form: %v", err)))
		return
	}
	n, err1 := formInt(r, "target_participants", 3, 1, maxSeedParticipants)
	epochs, err2 := formInt(r, "local_epochs", 1, 1, maxSeedEpochs)
	def := nn.DefaultsFor(seedModel)
	batch, err3 := formInt(r, "batch_size", def.Batch, 1, 1024)
	lr, err4 := formFloat(r, "learning_rate", def.LR, 0, 1)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			fail(w, err)
			return
		}
	}
	if !s.mu.TryLock() {
		writeErr(w, http.StatusConflict, "a training round is already running; try again when it finishes")
		return
	}
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), seedTimeout)
	defer cancel()
	start := time.Now()
	cfg := coord.Config{Name: "run_real_training", Model: seedModel, Dataset: "mnist", Partition: "iid",
		Clients: max(100, n), Rounds: 1, ClientsPerRound: n, MinClients: n, StartClients: n,
		LocalEpochs: epochs, Batch: batch, LR: lr, NoDeadline: true, Seed: uint64(start.UnixNano())}
	run, err := s.c.CreateRun(ctx, cfg)
	if err != nil {
		fail(w, err)
		return
	}
	sctx, stop := context.WithCancel(ctx)
	wait := sim.Join(sctx, s.c, run, n, sim.Options{})
	select {
	case <-run.Done():
	case <-ctx.Done():
		run.Stop(context.Background(), "run_real_training timed out or the client went away")
	}
	stop()
	wait()
	rounds, err := s.c.Store().Rounds(r.Context(), run.ID())
	if err != nil || len(rounds) == 0 || rounds[len(rounds)-1].ModelVersion == 0 {
		fail(w, fmt.Errorf("the round did not complete: %v", err))
		return
	}
	last := rounds[len(rounds)-1]
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(seedResult{Status: "completed", RunID: run.ID(), Round: last.Round, Participants: last.NSelected,
		Accepted: last.NAccepted, GlobalAccuracy: last.TestAccuracy, GlobalLoss: last.TestLoss, LocalEpochs: epochs,
		LearningRate: lr, BatchSize: batch, BytesUp: last.BytesUp, BytesDown: last.BytesDown, Seconds: time.Since(start).Seconds()})
}

func formInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.PostFormValue(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest(fmt.Sprintf("%s=%q is not an integer in %d..%d", name, v, lo, hi))
	}
	return n, nil
}

func formFloat(r *http.Request, name string, def, lo, hi float64) (float64, error) {
	v := r.PostFormValue(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > lo && f <= hi) {
		return 0, badRequest(fmt.Sprintf("%s=%q is not a number in (%g, %g]", name, v, lo, hi))
	}
	return f, nil
}

// badRequest is an error answered with 400.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// fail answers err: 400 for a bad request or configuration, 500 otherwise.
func fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var br badRequest
	if errors.As(err, &br) || errors.Is(err, coord.ErrBadConfig) {
		status = http.StatusBadRequest
	}
	writeErr(w, status, err.Error())
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
