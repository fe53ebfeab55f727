package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Verdict is the aggregator's judgement of one accepted update.
type Verdict struct {
	UpdateID  int64
	Score     float64
	Cosine    float64 // cosine similarity to the aggregate or a reference
	NormRatio float64 // update norm over the median norm, or similar
	Excluded  bool    // left out of the aggregate
	Reason    string  // why it was excluded
}

// Commit is everything that closes a round successfully; CommitRound writes
// it in one transaction.
type Commit struct {
	RunID         string
	Round         int
	FinishedAt    time.Time // zero means now
	TestAccuracy  float64
	TestLoss      float64
	Epsilon       *float64 // DP budget spent so far; nil without DP
	Metrics       json.RawMessage
	Model         Model     // the new global model; its RunID and Round default to the commit's
	Verdicts      []Verdict // for accepted updates of this round
	StrategyState []byte    // the server optimizer's state after the round
	KeepBlobs     bool      // keep the round's update blobs instead of clearing them
	Final         bool      // the run is finished
}

// CommitRound closes an open round in ONE transaction: it inserts the new
// model version, marks the round aggregated with its finish time, metrics
// and model_version, writes the verdicts onto the round's accepted updates,
// clears the round's update blobs unless KeepBlobs, and sets the run's
// model_version and strategy_state (and, when Final, status finished and
// finished_at). If any step fails nothing is written: the round stays open
// and its blobs stay. A round that is not open gives ErrNotOpen, a model
// version stored before ErrDuplicate, a verdict for an update that is not an
// accepted update of the round ErrNotFound.
func (s *Store) CommitRound(ctx context.Context, c *Commit) error {
	m := c.Model
	if m.RunID == "" {
		m.RunID = c.RunID
	}
	if m.Round == 0 {
		m.Round = c.Round
	}
	if m.RunID != c.RunID || m.Round != c.Round {
		return fmt.Errorf("store: commit round %d of run %q: model is for round %d of run %q",
			c.Round, c.RunID, m.Round, m.RunID)
	}
	metrics, err := jsonOrNull("metrics", c.Metrics)
	if err != nil {
		return fmt.Errorf("store: commit round %d: %w", c.Round, err)
	}
	finished := s.msOrNow(c.FinishedAt)
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.UnixMilli(finished)
	}
	err = s.tx(ctx, "commit_round", func(ctx context.Context, tx *sql.Tx) error {
		if err := requireOpen(ctx, tx, c.RunID, c.Round); err != nil {
			return err
		}
		if err := s.insertModel(ctx, tx, &m); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET status = 'aggregated',
			finished_at = ?, test_accuracy = ?, test_loss = ?, epsilon = ?, metrics = ?,
			model_version = ? WHERE run_id = ? AND round = ?`,
			finished, c.TestAccuracy, c.TestLoss, floatPtr(c.Epsilon), metrics, m.Version,
			c.RunID, c.Round); err != nil {
			return err
		}
		if err := writeVerdicts(ctx, tx, c); err != nil {
			return err
		}
		if !c.KeepBlobs {
			if _, err := tx.ExecContext(ctx, `UPDATE updates SET blob = NULL
				WHERE run_id = ? AND round = ? AND blob IS NOT NULL`, c.RunID, c.Round); err != nil {
				return err
			}
		}
		// insertModel has set runs.model_version.
		_, err := tx.ExecContext(ctx, `UPDATE runs SET strategy_state = ?1,
			status = CASE WHEN ?2 THEN 'finished' ELSE status END,
			finished_at = CASE WHEN ?2 THEN ?3 ELSE finished_at END
			WHERE id = ?4`,
			blobOrNull(c.StrategyState), c.Final, finished, c.RunID)
		return err
	})
	return wrap("commit round", err)
}

// writeVerdicts stores each verdict on its update, which must be an
// accepted update of the commit's round.
func writeVerdicts(ctx context.Context, tx *sql.Tx, c *Commit) error {
	if len(c.Verdicts) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `UPDATE updates SET score = ?, cosine = ?, norm_ratio = ?,
		excluded = ?, reason = ? WHERE id = ? AND run_id = ? AND round = ? AND accepted = 1`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, v := range c.Verdicts {
		res, err := stmt.ExecContext(ctx, v.Score, v.Cosine, v.NormRatio, boolInt(v.Excluded),
			textOrNull(v.Reason), v.UpdateID, c.RunID, c.Round)
		what := fmt.Sprintf("verdict: accepted update %d of round %d", v.UpdateID, c.Round)
		if err := affected(res, err, what); err != nil {
			return err
		}
	}
	return nil
}
