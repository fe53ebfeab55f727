package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Round statuses, as stored in rounds.status.
const (
	RoundOpen       = "open"
	RoundAggregated = "aggregated"
	RoundFailed     = "failed"
)

// Round is one round of a run (a row of rounds).
type Round struct {
	RunID        string
	Round        int    // 1 for the first round
	Status       string // RoundOpen, RoundAggregated or RoundFailed
	StartedAt    time.Time
	DeadlineAt   time.Time // zero when the round has no deadline
	FinishedAt   time.Time // zero while open
	Selected     []string  // IDs of the clients asked to train
	NSelected    int
	NReceived    int // updates received for the round, accepted or not
	NAccepted    int
	TestAccuracy float64 // of the model the round produced
	TestLoss     float64
	BytesUp      int64    // encoded bytes of the accepted updates
	BytesDown    int64    // bytes of models sent to clients for the round
	Epsilon      *float64 // differential-privacy budget spent so far; nil without DP
	ModelVersion int      // the model version the round produced; 0 until aggregated
	Metrics      json.RawMessage
	Error        string // why the round failed
}

// OpenRound inserts r with status RoundOpen and sets the run's
// current_round, in one transaction. The counters start at zero; NSelected
// defaults to len(Selected) and a zero StartedAt to now. On success r's
// Status, StartedAt and NSelected are set to what was stored.
//
// If the round exists and is still open (a restarted server resuming it),
// OpenRound changes nothing, fills r with the stored row and returns
// ErrResumed. If it exists but is closed it returns ErrDuplicate; an unknown
// run gives ErrNotFound.
func (s *Store) OpenRound(ctx context.Context, r *Round) error {
	return s.tx(ctx, "open_round", func(t *Tx) error { return t.OpenRound(r) })
}

// OpenRound is Store.OpenRound inside a group commit.
func (t *Tx) OpenRound(r *Round) error {
	if r.Round < 1 {
		return fmt.Errorf("store: open round %d of run %q: rounds start at 1", r.Round, r.RunID)
	}
	metrics, err := jsonOrNull("metrics", r.Metrics)
	if err != nil {
		return fmt.Errorf("store: open round %d: %w", r.Round, err)
	}
	nSelected := r.NSelected
	if nSelected == 0 {
		nSelected = len(r.Selected)
	}
	selected := marshalList(r.Selected)
	if selected == nil {
		selected = "[]"
	}
	started := t.s.msOrNow(r.StartedAt)
	var stored *Round
	err = func() error {
		old, err := scanRound(t.queryRow(`SELECT `+roundColumns+` FROM rounds
			WHERE run_id = ? AND round = ?`, r.RunID, r.Round))
		switch {
		case err == nil && old.Status == RoundOpen:
			stored = old
			return ErrResumed
		case err == nil:
			return fmt.Errorf("round %d of run %q is %s: %w", r.Round, r.RunID, old.Status, ErrDuplicate)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := t.exec(`UPDATE runs SET current_round = ? WHERE id = ?`, r.Round, r.RunID)
		if err := affected(res, err, fmt.Sprintf("run %q", r.RunID)); err != nil {
			return err
		}
		_, err = t.exec(`INSERT INTO rounds
			(run_id, round, status, started_at, deadline_at, selected, n_selected, epsilon, metrics)
			VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?)`,
			r.RunID, r.Round, started, msOrNull(r.DeadlineAt), selected, nSelected,
			floatPtr(r.Epsilon), metrics)
		return err
	}()
	switch {
	case errors.Is(err, ErrResumed):
		*r = *stored
		return ErrResumed
	case err != nil:
		return wrap("open round", err)
	}
	r.Status, r.StartedAt, r.NSelected = RoundOpen, time.UnixMilli(started).UTC(), nSelected
	return nil
}

const roundColumns = `run_id, round, status, started_at, deadline_at, finished_at, selected,
	n_selected, n_received, n_accepted, test_accuracy, test_loss, bytes_up, bytes_down,
	epsilon, model_version, metrics, error`

// scanRound reads one row of roundColumns.
func scanRound(row interface{ Scan(...any) error }) (*Round, error) {
	var r Round
	var started, deadline, finished, version sql.NullInt64
	var selected, metrics, errText sql.NullString
	var acc, loss, eps sql.NullFloat64
	err := row.Scan(&r.RunID, &r.Round, &r.Status, &started, &deadline, &finished, &selected,
		&r.NSelected, &r.NReceived, &r.NAccepted, &acc, &loss, &r.BytesUp, &r.BytesDown,
		&eps, &version, &metrics, &errText)
	if err != nil {
		return nil, err
	}
	r.StartedAt, r.DeadlineAt, r.FinishedAt = fromMS(started), fromMS(deadline), fromMS(finished)
	if r.Selected, err = unmarshalList[string]("selected", selected); err != nil {
		return nil, err
	}
	r.TestAccuracy, r.TestLoss, r.Epsilon = acc.Float64, loss.Float64, ptrFloat(eps)
	r.ModelVersion = int(version.Int64)
	r.Metrics = rawJSON(metrics)
	r.Error = errText.String
	return &r, nil
}

// Round returns one round of a run, or ErrNotFound.
func (s *Store) Round(ctx context.Context, runID string, round int) (*Round, error) {
	r, err := scanRound(s.r.QueryRowContext(ctx, `SELECT `+roundColumns+` FROM rounds
		WHERE run_id = ? AND round = ?`, runID, round))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: round %d of run %q: %w", round, runID, ErrNotFound)
	}
	return r, wrap("round", err)
}

// Rounds returns the rounds of a run, oldest first.
func (s *Store) Rounds(ctx context.Context, runID string) ([]Round, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+roundColumns+` FROM rounds
		WHERE run_id = ? ORDER BY round`, runID)
	if err != nil {
		return nil, wrap("rounds", err)
	}
	defer rows.Close()
	var list []Round
	for rows.Next() {
		r, err := scanRound(rows)
		if err != nil {
			return nil, wrap("rounds", err)
		}
		list = append(list, *r)
	}
	return list, wrap("rounds", rows.Err())
}

// requireOpen returns ErrNotFound or ErrNotOpen unless the round exists and
// is open, reading inside the write.
func (t *Tx) requireOpen(runID string, round int) error {
	var status string
	err := t.queryRow(`SELECT status FROM rounds WHERE run_id = ? AND round = ?`,
		runID, round).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("round %d of run %q: %w", round, runID, ErrNotFound)
	case err != nil:
		return err
	case status != RoundOpen:
		return fmt.Errorf("round %d of run %q is %s: %w", round, runID, status, ErrNotOpen)
	}
	return nil
}

// FailRound marks an open round failed with reason, sets its finished_at
// from the store's clock, and clears its update blobs (a failed round is
// never aggregated), in one transaction. A round that is not open gives
// ErrNotOpen; an unknown one ErrNotFound.
func (s *Store) FailRound(ctx context.Context, runID string, round int, reason string) error {
	return s.tx(ctx, "fail_round", func(t *Tx) error { return t.FailRound(&Failure{RunID: runID, Round: round, Reason: reason}) })
}

// Failure is what closes a round without a model; FailRound writes it.
type Failure struct {
	RunID     string
	Round     int
	Reason    string
	BytesDown int64 // bytes of models sent for the round (absolute)
	// Clients is the telemetry of the clients that changed since the last
	// write of it (absolute values).
	Clients []ClientStats
}

// FailRound is Store.FailRound inside a group commit, with the round's
// downlink bytes and the clients' telemetry.
func (t *Tx) FailRound(f *Failure) error {
	now := t.s.now().UnixMilli()
	err := func() error {
		if err := t.requireOpen(f.RunID, f.Round); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE rounds SET status = 'failed', finished_at = ?, error = ?,
			bytes_down = max(bytes_down, ?) WHERE run_id = ? AND round = ?`,
			now, textOrNull(f.Reason), f.BytesDown, f.RunID, f.Round); err != nil {
			return err
		}
		if err := t.settlePayloads(f.RunID, f.Round, false); err != nil {
			return err
		}
		return t.saveClientStats(f.RunID, f.Clients)
	}()
	return wrap("fail round", err)
}
