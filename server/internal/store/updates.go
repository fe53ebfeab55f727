package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Update is one model update a client sent (a row of updates).
type Update struct {
	ID          int64 // assigned by AddUpdate
	RunID       string
	Round       int
	ClientID    string
	ReceivedAt  time.Time
	Accepted    bool
	Reason      string // why it was rejected or excluded; "" when used
	Code        string // machine-readable form of Reason
	Samples     int    // training examples behind the update
	Bytes       int    // encoded bytes received
	BytesDown   int    // bytes of the model sent to the client for this round
	Codec       string
	BaseVersion int // the model version the client trained from
	Loss        float64
	Accuracy    float64
	TrainMS     int64
	SamplesPerS float64
	Score       float64 // set by the aggregator's verdict
	Cosine      float64
	NormRatio   float64
	Excluded    bool   // accepted but left out by the aggregator
	Blob        []byte // the encoded payload exactly as received
}

// AddUpdate stores u and returns its ID; the update is durable (synced to
// disk) when AddUpdate returns. In the same transaction it bumps the
// client's updates, bytes_up and (if accepted) accepted counters, moves its
// last_seen up to u.ReceivedAt and records a positive SamplesPerS; and it
// bumps the round's n_received and, for an accepted update, n_accepted and
// bytes_up. Counters of a client or (for a rejected update) a round that
// does not exist are skipped.
//
// An accepted update needs an open round (else ErrNotFound or ErrNotOpen)
// and is the only accepted one from its client in that round (else
// ErrDuplicate, and nothing is written). A zero ReceivedAt means now.
func (s *Store) AddUpdate(ctx context.Context, u *Update) (int64, error) {
	if u.RunID == "" || u.ClientID == "" {
		return 0, fmt.Errorf("store: add update: empty run or client ID")
	}
	if u.Bytes < 0 || u.BytesDown < 0 || u.Samples < 0 {
		return 0, fmt.Errorf("store: add update from %q: negative bytes %d, %d or samples %d", u.ClientID, u.Bytes, u.BytesDown, u.Samples)
	}
	received := s.msOrNow(u.ReceivedAt)
	accepted := boolInt(u.Accepted)
	var id int64
	err := s.tx(ctx, "add_update", func(ctx context.Context, tx *sql.Tx) error {
		if u.Accepted {
			if err := requireOpen(ctx, tx, u.RunID, u.Round); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO updates
			(run_id, round, client_id, received_at, accepted, reason, code, samples, bytes, bytes_down, codec,
			 base_version, loss, accuracy, train_ms, samples_per_s, score, cosine, norm_ratio,
			 excluded, blob)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.RunID, u.Round, u.ClientID, received, accepted, textOrNull(u.Reason),
			textOrNull(u.Code), u.Samples, u.Bytes, u.BytesDown, u.Codec, u.BaseVersion, u.Loss, u.Accuracy,
			u.TrainMS, u.SamplesPerS, u.Score, u.Cosine, u.NormRatio, boolInt(u.Excluded),
			blobOrNull(u.Blob))
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		up := int64(u.Bytes) * int64(accepted)
		if _, err := tx.ExecContext(ctx, `UPDATE rounds SET n_received = n_received + 1,
			n_accepted = n_accepted + ?, bytes_up = bytes_up + ?
			WHERE run_id = ? AND round = ?`, accepted, up, u.RunID, u.Round); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE clients SET updates = updates + 1,
			accepted = accepted + ?, bytes_up = bytes_up + ?, last_seen = max(last_seen, ?),
			samples_per_s = CASE WHEN ? > 0 THEN ? ELSE samples_per_s END
			WHERE run_id = ? AND id = ?`,
			accepted, u.Bytes, received, u.SamplesPerS, u.SamplesPerS, u.RunID, u.ClientID)
		return err
	})
	if err != nil {
		return 0, wrap("add update", err)
	}
	return id, nil
}

const updateColumns = `id, run_id, round, client_id, received_at, accepted, reason, code,
	samples, bytes, bytes_down, codec, base_version, loss, accuracy, train_ms, samples_per_s, score,
	cosine, norm_ratio, excluded`

// scanUpdate reads one row of updateColumns, followed by blob when withBlob.
func scanUpdate(row interface{ Scan(...any) error }, withBlob bool) (*Update, error) {
	var u Update
	var received sql.NullInt64
	var reason, code sql.NullString
	var loss, acc, speed, score, cosine, ratio sql.NullFloat64
	dest := []any{&u.ID, &u.RunID, &u.Round, &u.ClientID, &received, &u.Accepted, &reason, &code,
		&u.Samples, &u.Bytes, &u.BytesDown, &u.Codec, &u.BaseVersion, &loss, &acc, &u.TrainMS, &speed, &score,
		&cosine, &ratio, &u.Excluded}
	if withBlob {
		dest = append(dest, &u.Blob)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	u.ReceivedAt = fromMS(received)
	u.Reason, u.Code = reason.String, code.String
	u.Loss, u.Accuracy, u.SamplesPerS = loss.Float64, acc.Float64, speed.Float64
	u.Score, u.Cosine, u.NormRatio = score.Float64, cosine.Float64, ratio.Float64
	return &u, nil
}

// queryUpdates runs query and scans every row.
func (s *Store) queryUpdates(ctx context.Context, op string, withBlob bool, query string, args ...any) ([]Update, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var list []Update
	for rows.Next() {
		u, err := scanUpdate(rows, withBlob)
		if err != nil {
			return nil, wrap(op, err)
		}
		list = append(list, *u)
	}
	return list, wrap(op, rows.Err())
}

// PendingUpdates returns the accepted updates of a round with their blobs,
// in the order they were received (by ID): what a restarted server needs to
// rebuild an open round. After the round is aggregated the blobs are nil
// unless the run keeps them.
func (s *Store) PendingUpdates(ctx context.Context, runID string, round int) ([]Update, error) {
	return s.queryUpdates(ctx, "pending updates", true, `SELECT `+updateColumns+`, blob
		FROM updates WHERE run_id = ? AND round = ? AND accepted = 1 ORDER BY id`, runID, round)
}

// Updates returns the metadata (no blobs) of every update of a round, or of
// every round when round < 0, by ID.
func (s *Store) Updates(ctx context.Context, runID string, round int) ([]Update, error) {
	if round < 0 {
		return s.queryUpdates(ctx, "updates", false, `SELECT `+updateColumns+`
			FROM updates WHERE run_id = ? ORDER BY id`, runID)
	}
	return s.queryUpdates(ctx, "updates", false, `SELECT `+updateColumns+`
		FROM updates WHERE run_id = ? AND round = ? ORDER BY id`, runID, round)
}
