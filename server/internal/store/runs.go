package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Run statuses, as stored in runs.status.
const (
	RunWaiting  = "waiting"
	RunRunning  = "running"
	RunFinished = "finished"
	RunStopped  = "stopped"
	RunFailed   = "failed"
)

// Run is one federated training run (a row of runs).
type Run struct {
	ID            string
	Name          string
	Config        json.RawMessage // opaque to the store; must be valid JSON or empty
	JoinToken     string
	Status        string // RunWaiting, RunRunning, RunFinished, RunStopped or RunFailed
	CreatedAt     time.Time
	StartedAt     time.Time // zero until the run first enters RunRunning
	FinishedAt    time.Time // zero unless finished, stopped or failed
	CurrentRound  int       // the open or last round; 0 before the first
	ModelVersion  int       // the latest global model version
	StrategyState []byte    // the server optimizer's state, opaque to the store
	Error         string    // why the run failed
}

// validRunStatus reports whether status is one the schema allows.
func validRunStatus(status string) bool {
	switch status {
	case RunWaiting, RunRunning, RunFinished, RunStopped, RunFailed:
		return true
	}
	return false
}

// CreateRun inserts r. An empty Status is stored as RunWaiting and a zero
// CreatedAt as now; r itself is not modified. A run with the same ID gives
// ErrDuplicate.
func (s *Store) CreateRun(ctx context.Context, r *Run) error {
	return s.tx(ctx, "create_run", func(t *Tx) error { return t.CreateRun(r) })
}

// CreateRun is Store.CreateRun inside a group commit.
func (t *Tx) CreateRun(r *Run) error {
	if r.ID == "" {
		return fmt.Errorf("store: create run: empty run ID")
	}
	status := r.Status
	if status == "" {
		status = RunWaiting
	}
	if !validRunStatus(status) {
		return fmt.Errorf("store: create run %q: invalid status %q", r.ID, status)
	}
	config, err := jsonOrNull("config", r.Config)
	if err != nil {
		return fmt.Errorf("store: create run %q: %w", r.ID, err)
	}
	_, err = t.exec(`INSERT INTO runs
		(id, name, config, join_token, status, created_at, started_at, finished_at,
		 current_round, model_version, error, strategy_state)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Name, config, r.JoinToken, status, t.s.msOrNow(r.CreatedAt),
		msOrNull(r.StartedAt), msOrNull(r.FinishedAt), r.CurrentRound, r.ModelVersion,
		textOrNull(r.Error), blobOrNull(r.StrategyState))
	return wrap("create run", err)
}

const runColumns = `id, name, config, join_token, status, created_at, started_at,
	finished_at, current_round, model_version, error, strategy_state`

// scanRun reads one row of runColumns.
func scanRun(row interface{ Scan(...any) error }) (*Run, error) {
	var r Run
	var config, errText sql.NullString
	var created, started, finished sql.NullInt64
	err := row.Scan(&r.ID, &r.Name, &config, &r.JoinToken, &r.Status, &created, &started,
		&finished, &r.CurrentRound, &r.ModelVersion, &errText, &r.StrategyState)
	if err != nil {
		return nil, err
	}
	r.Config = rawJSON(config)
	r.CreatedAt, r.StartedAt, r.FinishedAt = fromMS(created), fromMS(started), fromMS(finished)
	r.Error = errText.String
	return &r, nil
}

// Run returns the run with the given ID, or ErrNotFound.
func (s *Store) Run(ctx context.Context, id string) (*Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: run %q: %w", id, ErrNotFound)
	}
	return r, wrap("run", err)
}

// Runs returns all runs, newest first.
func (s *Store) Runs(ctx context.Context) ([]Run, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+runColumns+` FROM runs ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, wrap("runs", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, wrap("runs", err)
		}
		runs = append(runs, *r)
	}
	return runs, wrap("runs", rows.Err())
}

// SetRunStatus sets a run's status and error text ("" clears it). Entering
// RunRunning sets started_at the first time; entering RunFinished, RunStopped
// or RunFailed sets finished_at, and entering RunWaiting or RunRunning clears
// it. Both times come from the store's clock. An unknown run gives ErrNotFound.
func (s *Store) SetRunStatus(ctx context.Context, id, status, errText string) error {
	return s.tx(ctx, "set_run_status", func(t *Tx) error { return t.SetRunStatus(id, status, errText) })
}

// SetRunStatus is Store.SetRunStatus inside a group commit.
func (t *Tx) SetRunStatus(id, status, errText string) error {
	if !validRunStatus(status) {
		return fmt.Errorf("store: set run %q status: invalid status %q", id, status)
	}
	now := t.s.now().UnixMilli()
	ended := status == RunFinished || status == RunStopped || status == RunFailed
	res, err := t.exec(`UPDATE runs SET
		status = ?1,
		error = ?2,
		started_at = CASE WHEN ?1 = 'running' THEN coalesce(started_at, ?3) ELSE started_at END,
		finished_at = CASE WHEN ?4 THEN ?3 ELSE NULL END
		WHERE id = ?5`,
		status, textOrNull(errText), now, ended, id)
	return wrap("set run status", affected(res, err, fmt.Sprintf("run %q", id)))
}
