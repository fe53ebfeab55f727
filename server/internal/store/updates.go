package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
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
	SamplesPerS float64   // the training speed the client measured
	Staleness   int       // steps behind the step's model it was trained (async)
	TaskAt      time.Time // when its task was sent (zero: unknown)
	Profile     string    // the device profile its client emulates
	Score       float64   // set by the aggregator's verdict
	Cosine      float64
	NormRatio   float64
	Excluded    bool   // accepted but left out by the aggregator
	Blob        []byte // the encoded payload exactly as received
	// Lost reports (PendingUpdates only) an accepted update whose payload
	// could not be read back: its payload file is missing or damaged.
	Lost error
}

// AddUpdate stores u and returns its ID; the update is durable (synced to
// disk) when AddUpdate returns. In the same transaction it bumps the round's
// n_received and, for an accepted update, n_accepted and bytes_up (skipped
// for a rejected update of a round that does not exist). The client's
// counters are telemetry the coordinator keeps and writes with the round
// (ClientStats).
//
// An accepted update needs an open round (else ErrNotFound or ErrNotOpen,
// and nothing is written). A round may hold several accepted updates of a
// client (an asynchronous step does); the coordinator accepts one per
// task. A zero ReceivedAt means now.
func (s *Store) AddUpdate(ctx context.Context, u *Update) (int64, error) {
	var id int64
	err := s.tx(ctx, "add_update", func(t *Tx) (err error) {
		id, err = t.AddUpdate(u)
		return err
	})
	return id, err
}

// AddUpdate is Store.AddUpdate inside a group commit; u.ID is set too.
func (t *Tx) AddUpdate(u *Update) (int64, error) {
	if u.RunID == "" || u.ClientID == "" {
		return 0, fmt.Errorf("store: add update: empty run or client ID")
	}
	if u.Bytes < 0 || u.BytesDown < 0 || u.Samples < 0 {
		return 0, fmt.Errorf("store: add update from %q: negative bytes %d, %d or samples %d", u.ClientID, u.Bytes, u.BytesDown, u.Samples)
	}
	received := t.s.msOrNow(u.ReceivedAt)
	accepted := boolInt(u.Accepted)
	var id int64
	err := func() error {
		// The round's counters first: for an accepted update the same
		// statement checks that the round is open (a query of its own
		// cost as much as the insert).
		up := int64(u.Bytes) * int64(accepted)
		res, err := t.exec(`UPDATE rounds SET n_received = n_received + 1,
			n_accepted = n_accepted + ?1, bytes_up = bytes_up + ?2
			WHERE run_id = ?3 AND round = ?4 AND (?1 = 0 OR status = 'open')`, accepted, up, u.RunID, u.Round)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 && u.Accepted {
			if err := t.requireOpen(u.RunID, u.Round); err != nil {
				return err
			}
			return fmt.Errorf("round %d of run %q: %w", u.Round, u.RunID, ErrNotOpen)
		}
		// A file database keeps an accepted payload in the round's payload
		// file (synced before this row commits); a rejected one has none.
		blob := blobOrNull(u.Blob)
		var off, length, crc any
		if t.s.log != nil && u.Accepted && len(u.Blob) > 0 {
			ref, err := t.s.log.appendPayload(u.RunID, u.Round, u.Blob)
			if err != nil {
				return err
			}
			t.logged = true
			blob, off, length, crc = nil, ref.offset, ref.length, int64(ref.crc)
		}
		res, err = t.exec(`INSERT INTO updates
			(run_id, round, client_id, received_at, accepted, reason, code, samples, bytes, bytes_down, codec,
			 base_version, loss, accuracy, train_ms, samples_per_s, score, cosine, norm_ratio,
			 excluded, payload_offset, payload_len, payload_crc, blob, staleness, task_at, profile)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.RunID, u.Round, u.ClientID, received, accepted, textOrNull(u.Reason),
			textOrNull(u.Code), u.Samples, u.Bytes, u.BytesDown, u.Codec, u.BaseVersion, u.Loss, u.Accuracy,
			u.TrainMS, u.SamplesPerS, u.Score, u.Cosine, u.NormRatio, boolInt(u.Excluded),
			off, length, crc, blob, u.Staleness, msOrNull(u.TaskAt), textOrNull(u.Profile))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	}()
	if err != nil {
		return 0, wrap("add update", err)
	}
	u.ID = id
	return id, nil
}

const updateColumns = `id, run_id, round, client_id, received_at, accepted, reason, code,
	samples, bytes, bytes_down, codec, base_version, loss, accuracy, train_ms, samples_per_s, score,
	cosine, norm_ratio, excluded, staleness, task_at, profile`

// scanUpdate reads one row of updateColumns, followed by extra columns
// into extra; a *[]byte last is the blob.
func scanUpdate(row interface{ Scan(...any) error }, extra ...any) (*Update, error) {
	var u Update
	var received sql.NullInt64
	var reason, code sql.NullString
	var loss, acc, speed, score, cosine, ratio sql.NullFloat64
	var taskAt sql.NullInt64
	var profile sql.NullString
	dest := []any{&u.ID, &u.RunID, &u.Round, &u.ClientID, &received, &u.Accepted, &reason, &code,
		&u.Samples, &u.Bytes, &u.BytesDown, &u.Codec, &u.BaseVersion, &loss, &acc, &u.TrainMS, &speed, &score,
		&cosine, &ratio, &u.Excluded, &u.Staleness, &taskAt, &profile}
	dest = append(dest, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if n := len(extra); n > 0 {
		if b, ok := extra[n-1].(*[]byte); ok {
			u.Blob = *b
		}
	}
	u.ReceivedAt = fromMS(received)
	u.TaskAt, u.Profile = fromMS(taskAt), profile.String
	u.Reason, u.Code = reason.String, code.String
	u.Loss, u.Accuracy, u.SamplesPerS = loss.Float64, acc.Float64, speed.Float64
	u.Score, u.Cosine, u.NormRatio = score.Float64, cosine.Float64, ratio.Float64
	return &u, nil
}

// queryUpdates runs query and scans every row.
func (s *Store) queryUpdates(ctx context.Context, op string, query string, args ...any) ([]Update, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var list []Update
	for rows.Next() {
		u, err := scanUpdate(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		list = append(list, *u)
	}
	return list, wrap(op, rows.Err())
}

// PendingUpdates returns the accepted updates of a round with their
// payloads, in the order they were received (by ID), except those folded
// at an edge shard (see PendingPartials): what a restarted
// server needs to rebuild an open round. An update whose payload cannot be
// read back has Lost set (see LoseUpdate). After the round is aggregated the
// payloads are nil unless the run keeps them.
func (s *Store) PendingUpdates(ctx context.Context, runID string, round int) ([]Update, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+updateColumns+`, payload_offset, payload_len, payload_crc, blob
		FROM updates WHERE run_id = ? AND round = ? AND accepted = 1 AND partial_id IS NULL ORDER BY id`, runID, round)
	if err != nil {
		return nil, wrap("pending updates", err)
	}
	defer rows.Close()
	var list []Update
	for rows.Next() {
		var off, length, crc sql.NullInt64
		u, err := scanUpdate(rows, &off, &length, &crc, new([]byte))
		if err != nil {
			return nil, wrap("pending updates", err)
		}
		list = append(list, *u)
		last := &list[len(list)-1]
		switch {
		case off.Valid && s.log == nil:
			last.Lost = fmt.Errorf("store: update %d has its payload in a payload file, but the database is in memory", u.ID)
		case off.Valid:
			last.Blob, last.Lost = s.log.read(runID, round, payloadRef{offset: off.Int64, length: int(length.Int64), crc: uint32(crc.Int64)})
		}
	}
	return list, wrap("pending updates", rows.Err())
}

// LoseUpdate marks an accepted update whose payload was lost (PendingUpdates
// reported it Lost) as not accepted, with reason, so that its client can
// send another for the round.
func (t *Tx) LoseUpdate(id int64, reason string) error {
	res, err := t.exec(`UPDATE updates SET accepted = 0, code = 'store', reason = ?,
		payload_offset = NULL, payload_len = NULL, payload_crc = NULL, blob = NULL WHERE id = ? AND accepted = 1`, reason, id)
	return wrap("lose update", affected(res, err, fmt.Sprintf("accepted update %d", id)))
}

// Updates returns the metadata (no blobs) of every update of a round, or of
// every round when round < 0, by ID.
func (s *Store) Updates(ctx context.Context, runID string, round int) ([]Update, error) {
	if round < 0 {
		return s.queryUpdates(ctx, "updates", `SELECT `+updateColumns+`
			FROM updates WHERE run_id = ? ORDER BY id`, runID)
	}
	return s.queryUpdates(ctx, "updates", `SELECT `+updateColumns+`
		FROM updates WHERE run_id = ? AND round = ? ORDER BY id`, runID, round)
}

// MaxUpdatesPage is the most update rows UpdatesPage returns at once.
const MaxUpdatesPage = 5000

// UpdatesPage returns the metadata of up to limit updates of a run (of one
// round when round > 0) with an ID above after, by ID; newestFirst returns
// the newest first, with IDs below before instead (before ≤ 0: from the
// newest). limit is clamped to 1..MaxUpdatesPage.
func (s *Store) UpdatesPage(ctx context.Context, runID string, round int, after, before int64, limit int, newestFirst bool) ([]Update, error) {
	limit = max(1, min(limit, MaxUpdatesPage))
	q := `SELECT ` + updateColumns + ` FROM updates WHERE run_id = ?1 AND (?2 <= 0 OR round = ?2)`
	if newestFirst {
		if before <= 0 {
			before = math.MaxInt64
		}
		return s.queryUpdates(ctx, "updates page", q+` AND id < ?3 ORDER BY id DESC LIMIT ?4`, runID, round, before, limit)
	}
	return s.queryUpdates(ctx, "updates page", q+` AND id > ?3 ORDER BY id LIMIT ?4`, runID, round, after, limit)
}
