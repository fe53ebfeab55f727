package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CodecFloat32 is the default model codec: raw little-endian float32s, four
// bytes per parameter (see EncodeFloat32s).
const CodecFloat32 = "float32"

// Model is one version of a run's global model (a row of models).
type Model struct {
	RunID        string
	Version      int // 0 for the initial model
	Round        int // the round that produced it; 0 for the initial model
	CreatedAt    time.Time
	Params       int    // number of parameters
	Codec        string // how Weights is encoded; "" means CodecFloat32
	Weights      []byte // nil in metadata-only results
	TestAccuracy float64
	TestLoss     float64
}

// checkModel validates m and returns its codec.
func checkModel(m *Model) (string, error) {
	codec := m.Codec
	if codec == "" {
		codec = CodecFloat32
	}
	switch {
	case m.RunID == "":
		return "", errors.New("empty run ID")
	case m.Version < 0 || m.Params < 0:
		return "", fmt.Errorf("negative version %d or params %d", m.Version, m.Params)
	case len(m.Weights) == 0:
		return "", fmt.Errorf("model version %d has no weights", m.Version)
	case codec == CodecFloat32 && len(m.Weights) != 4*m.Params:
		return "", fmt.Errorf("model version %d: %d bytes of float32 weights for %d params; want %d",
			m.Version, len(m.Weights), m.Params, 4*m.Params)
	}
	return codec, nil
}

// insertModel inserts m and moves the run's model_version up to it.
func (t *Tx) insertModel(m *Model) error {
	codec, err := checkModel(m)
	if err != nil {
		return err
	}
	if _, err := t.exec(`INSERT INTO models
		(run_id, version, round, created_at, params, codec, test_accuracy, test_loss, weights)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.RunID, m.Version, m.Round, t.s.msOrNow(m.CreatedAt), m.Params, codec,
		m.TestAccuracy, m.TestLoss, m.Weights); err != nil {
		return err
	}
	res, err := t.exec(`UPDATE runs SET model_version = max(model_version, ?)
		WHERE id = ?`, m.Version, m.RunID)
	return affected(res, err, fmt.Sprintf("run %q", m.RunID))
}

// SaveModel stores a model version outside a round (the initial model,
// version 0, or one imported) and moves the run's model_version up to it. A
// version stored twice gives ErrDuplicate; an unknown run ErrNotFound. With
// CodecFloat32, Weights must hold exactly 4*Params bytes. A zero CreatedAt
// means now.
func (s *Store) SaveModel(ctx context.Context, m *Model) error {
	return s.tx(ctx, "save_model", func(t *Tx) error { return t.SaveModel(m) })
}

// SaveModel is Store.SaveModel inside a group commit.
func (t *Tx) SaveModel(m *Model) error { return wrap("save model", t.insertModel(m)) }

// Model returns one version of a run's model with its weights, the latest
// when version < 0, or ErrNotFound.
func (s *Store) Model(ctx context.Context, runID string, version int) (*Model, error) {
	var m Model
	var created sql.NullInt64
	var acc, loss sql.NullFloat64
	err := s.r.QueryRowContext(ctx, `SELECT run_id, version, round, created_at, params, codec,
		test_accuracy, test_loss, weights FROM models
		WHERE run_id = ?1 AND (?2 < 0 OR version = ?2) ORDER BY version DESC LIMIT 1`,
		runID, version).Scan(&m.RunID, &m.Version, &m.Round, &created, &m.Params, &m.Codec,
		&acc, &loss, &m.Weights)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: model version %d of run %q: %w", version, runID, ErrNotFound)
	}
	if err != nil {
		return nil, wrap("model", err)
	}
	m.CreatedAt, m.TestAccuracy, m.TestLoss = fromMS(created), acc.Float64, loss.Float64
	return &m, nil
}

// ModelVersions returns the metadata of a run's model versions (Weights
// nil), oldest first.
func (s *Store) ModelVersions(ctx context.Context, runID string) ([]Model, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT run_id, version, round, created_at, params, codec,
		test_accuracy, test_loss FROM models WHERE run_id = ? ORDER BY version`, runID)
	if err != nil {
		return nil, wrap("model versions", err)
	}
	defer rows.Close()
	var list []Model
	for rows.Next() {
		var m Model
		var created sql.NullInt64
		var acc, loss sql.NullFloat64
		if err := rows.Scan(&m.RunID, &m.Version, &m.Round, &created, &m.Params, &m.Codec,
			&acc, &loss); err != nil {
			return nil, wrap("model versions", err)
		}
		m.CreatedAt, m.TestAccuracy, m.TestLoss = fromMS(created), acc.Float64, loss.Float64
		list = append(list, m)
	}
	return list, wrap("model versions", rows.Err())
}

// PruneModels deletes a run's old model versions, keeping the keepLast
// newest, every version divisible by keepEvery (when keepEvery > 0; this
// keeps version 0, the initial model), and always the latest. It returns how
// many versions it deleted.
func (s *Store) PruneModels(ctx context.Context, runID string, keepLast, keepEvery int) (int, error) {
	var n int
	err := s.tx(ctx, "prune_models", func(t *Tx) (err error) {
		n, err = t.PruneModels(runID, keepLast, keepEvery)
		return err
	})
	return n, err
}

// PruneModels is Store.PruneModels inside a group commit.
func (t *Tx) PruneModels(runID string, keepLast, keepEvery int) (int, error) {
	return t.pruneModels(runID, keepLast, keepEvery, 0)
}

// pruneModels is PruneModels that also keeps every version from keepFrom
// on (when keepFrom > 0).
func (t *Tx) pruneModels(runID string, keepLast, keepEvery, keepFrom int) (int, error) {
	res, err := t.exec(`DELETE FROM models WHERE run_id = ?1
		AND version NOT IN (SELECT version FROM models WHERE run_id = ?1
		                    ORDER BY version DESC LIMIT ?2)
		AND (?3 <= 0 OR version % ?3 != 0)
		AND (?4 <= 0 OR version < ?4)`,
		runID, max(keepLast, 1), keepEvery, keepFrom)
	if err != nil {
		return 0, wrap("prune models", err)
	}
	n, err := res.RowsAffected()
	return int(n), wrap("prune models", err)
}
