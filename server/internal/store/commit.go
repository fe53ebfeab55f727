package store

import (
	"context"
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
	BytesDown     int64     // bytes of models sent for the round (absolute)
	// Clients is the telemetry of the clients that changed since it was last
	// written (absolute values).
	Clients []ClientStats
	// KeepModels and KeepEveryModel, when KeepModels > 0, prune the run's
	// model versions after the new one is in (see PruneModels).
	KeepModels, KeepEveryModel int
	// KeepFrom > 0 keeps every version from KeepFrom on as well: the
	// versions clients still train from (asynchronous runs).
	KeepFrom int
}

// CommitRound closes an open round in ONE transaction: it inserts the new
// model version, marks the round aggregated with its finish time, metrics
// and model_version, writes the verdicts onto the round's accepted updates,
// clears the round's update blobs unless KeepBlobs, and sets the run's
// model_version and strategy_state (and, when Final, status finished and
// finished_at). If any step fails nothing is written: the round stays open
// and its blobs stay. A round that is not open gives ErrNotOpen, a model
// version stored before ErrDuplicate, a verdict for an update that is not an
// accepted update of the round ErrNotFound. The same transaction writes the
// round's downlink bytes, the clients' telemetry and prunes old models.
func (s *Store) CommitRound(ctx context.Context, c *Commit) error {
	return s.tx(ctx, "commit_round", func(t *Tx) error { return t.CommitRound(c) })
}

// CommitRound is Store.CommitRound inside a group commit.
func (t *Tx) CommitRound(c *Commit) error {
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
	finished := t.s.msOrNow(c.FinishedAt)
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.UnixMilli(finished)
	}
	err = func() error {
		if err := t.requireOpen(c.RunID, c.Round); err != nil {
			return err
		}
		if err := t.insertModel(&m); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE rounds SET status = 'aggregated',
			finished_at = ?, test_accuracy = ?, test_loss = ?, epsilon = ?, metrics = ?,
			model_version = ?, bytes_down = max(bytes_down, ?) WHERE run_id = ? AND round = ?`,
			finished, c.TestAccuracy, c.TestLoss, floatPtr(c.Epsilon), metrics, m.Version,
			c.BytesDown, c.RunID, c.Round); err != nil {
			return err
		}
		if err := t.writeVerdicts(c); err != nil {
			return err
		}
		if err := t.settlePayloads(c.RunID, c.Round, c.KeepBlobs); err != nil {
			return err
		}
		if err := t.saveClientStats(c.RunID, c.Clients); err != nil {
			return err
		}
		if c.KeepModels > 0 {
			if _, err := t.pruneModels(c.RunID, c.KeepModels, c.KeepEveryModel, c.KeepFrom); err != nil {
				return err
			}
		}
		// insertModel has set runs.model_version.
		_, err := t.exec(`UPDATE runs SET strategy_state = ?1,
			status = CASE WHEN ?2 AND status IN ('waiting', 'running') THEN 'finished' ELSE status END,
			finished_at = CASE WHEN ?2 AND finished_at IS NULL THEN ?3 ELSE finished_at END
			WHERE id = ?4`,
			blobOrNull(c.StrategyState), c.Final, finished, c.RunID)
		return err
	}()
	return wrap("commit round", err)
}

// writeVerdicts stores each verdict on its update, which must be an
// accepted update of the commit's round.
func (t *Tx) writeVerdicts(c *Commit) error {
	if len(c.Verdicts) == 0 {
		return nil
	}
	stmt, err := t.tx.PrepareContext(t.ctx, `UPDATE updates SET score = ?, cosine = ?, norm_ratio = ?,
		excluded = ?, reason = ? WHERE id = ? AND run_id = ? AND round = ? AND accepted = 1`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, v := range c.Verdicts {
		res, err := stmt.ExecContext(t.ctx, v.Score, v.Cosine, v.NormRatio, boolInt(v.Excluded),
			textOrNull(v.Reason), v.UpdateID, c.RunID, c.Round)
		what := fmt.Sprintf("verdict: accepted update %d of round %d", v.UpdateID, c.Round)
		if err := affected(res, err, what); err != nil {
			return err
		}
	}
	return nil
}

// settlePayloads ends a closed round's payloads: the rows keep them as
// blobs when keep is true (moved in from the payload file), else drop them;
// the round's payload file is deleted once the write has committed.
func (t *Tx) settlePayloads(run string, round int, keep bool) error {
	if keep && t.s.log != nil {
		rows, err := t.tx.QueryContext(t.ctx, `SELECT id, payload_offset, payload_len, payload_crc FROM updates
			WHERE run_id = ? AND round = ? AND payload_offset IS NOT NULL`, run, round)
		if err != nil {
			return err
		}
		type moved struct {
			id   int64
			blob []byte
		}
		var list []moved
		for rows.Next() {
			var id, off, length, crc int64
			if err := rows.Scan(&id, &off, &length, &crc); err != nil {
				rows.Close()
				return err
			}
			b, err := t.s.log.read(run, round, payloadRef{offset: off, length: int(length), crc: uint32(crc)})
			if err != nil {
				rows.Close()
				return err
			}
			list = append(list, moved{id, b})
		}
		rows.Close()
		for _, m := range list {
			if _, err := t.exec(`UPDATE updates SET blob = ?, payload_offset = NULL, payload_len = NULL,
				payload_crc = NULL WHERE id = ?`, m.blob, m.id); err != nil {
				return err
			}
		}
	}
	if !keep {
		if _, err := t.exec(`UPDATE updates SET blob = NULL, payload_offset = NULL, payload_len = NULL, payload_crc = NULL
			WHERE run_id = ? AND round = ? AND (blob IS NOT NULL OR payload_offset IS NOT NULL)`, run, round); err != nil {
			return err
		}
	}
	// Edge shards' partials of the round go with the file (partials.go).
	if err := t.settlePartials(run, round); err != nil {
		return err
	}
	if log := t.s.log; log != nil {
		t.after = append(t.after, func() { log.drop(run, round) })
	}
	return nil
}
