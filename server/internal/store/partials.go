package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Partial is a sum of updates folded at an edge shard: a row of partials.
// Its payload is the compressed partial exactly as the shard sent it; the
// updates it holds are rows of updates that name it in partial_id and
// have no payload of their own.
type Partial struct {
	ID         int64 // assigned by AddPartial
	RunID      string
	Round      int
	Shard      string // the shard's name
	ReceivedAt time.Time
	Count      int   // updates in it
	Weight     int64 // the sum of their weights
	Bytes      int   // the payload's size
	// Clipped says, per update in fold order, whether a DP run's shard
	// clipped it; nil without DP.
	Clipped []bool
	Blob    []byte
	// Updates are its updates in fold order (PendingPartials).
	Updates []Update
	// Lost reports (PendingPartials only) a payload that could not be read
	// back.
	Lost error
}

// AddPartial stores an edge shard's partial and its updates, which must be
// accepted, in fold order, and carry no payload, in one write: the partial
// is durable with all of them, or nothing is written. Like AddUpdate it
// needs the round open and bumps the round's counters for each update; as
// for AddUpdate, the coordinator's loop, not the store, enforces one
// accepted update per client and task (schema 4). p.ID and each update's
// ID are set.
func (t *Tx) AddPartial(p *Partial, ups []*Update) error {
	switch {
	case p.RunID == "" || p.Shard == "" || len(p.Blob) == 0:
		return fmt.Errorf("store: add partial: empty run, shard or payload")
	case p.Count != len(ups) || p.Count < 1:
		return fmt.Errorf("store: add partial: %d updates for a partial of %d", len(ups), p.Count)
	case p.Clipped != nil && len(p.Clipped) != p.Count:
		return fmt.Errorf("store: add partial: %d clipped flags for %d updates", len(p.Clipped), p.Count)
	}
	err := func() error {
		if err := t.requireOpen(p.RunID, p.Round); err != nil {
			return err
		}
		var clipped any
		if p.Clipped != nil {
			b, _ := json.Marshal(p.Clipped)
			clipped = string(b)
		}
		blob := blobOrNull(p.Blob)
		var off, length, crc any
		if t.s.log != nil {
			ref, err := t.s.log.appendPayload(p.RunID, p.Round, p.Blob)
			if err != nil {
				return err
			}
			t.logged = true
			blob, off, length, crc = nil, ref.offset, ref.length, int64(ref.crc)
		}
		res, err := t.exec(`INSERT INTO partials (run_id, round, shard, received_at, count, weight, bytes, clipped,
			payload_offset, payload_len, payload_crc, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.RunID, p.Round, p.Shard, t.s.msOrNow(p.ReceivedAt), p.Count, p.Weight, len(p.Blob), clipped,
			off, length, crc, blob)
		if err != nil {
			return err
		}
		if p.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, u := range ups {
			if !u.Accepted || len(u.Blob) > 0 || u.RunID != p.RunID || u.Round != p.Round {
				return fmt.Errorf("partial of round %d: update from %q is not an accepted update of the round without a payload",
					p.Round, u.ClientID)
			}
			if _, err := t.AddUpdate(u); err != nil {
				return err
			}
			if _, err := t.exec(`UPDATE updates SET partial_id = ? WHERE id = ?`, p.ID, u.ID); err != nil {
				return err
			}
		}
		return nil
	}()
	return wrap("add partial", err)
}

// PendingPartials returns the partials of a round with their payloads and
// updates, in the order they were stored: with PendingUpdates, what a
// restarted server needs to rebuild an open round. A partial whose payload
// cannot be read back has Lost set (see LosePartial).
func (s *Store) PendingPartials(ctx context.Context, runID string, round int) ([]Partial, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, shard, received_at, count, weight, bytes, clipped,
		payload_offset, payload_len, payload_crc, blob FROM partials WHERE run_id = ? AND round = ? ORDER BY id`, runID, round)
	if err != nil {
		return nil, wrap("pending partials", err)
	}
	var list []Partial
	for rows.Next() {
		p := Partial{RunID: runID, Round: round}
		var received sql.NullInt64
		var clipped sql.NullString
		var off, length, crc sql.NullInt64
		if err := rows.Scan(&p.ID, &p.Shard, &received, &p.Count, &p.Weight, &p.Bytes, &clipped, &off, &length, &crc, &p.Blob); err != nil {
			rows.Close()
			return nil, wrap("pending partials", err)
		}
		p.ReceivedAt = fromMS(received)
		if clipped.Valid {
			if err := json.Unmarshal([]byte(clipped.String), &p.Clipped); err != nil {
				p.Lost = fmt.Errorf("store: partial %d: clipped flags: %w", p.ID, err)
			}
		}
		switch {
		case off.Valid && s.log == nil:
			p.Lost = fmt.Errorf("store: partial %d has its payload in a payload file, but the database is in memory", p.ID)
		case off.Valid:
			p.Blob, p.Lost = s.log.read(runID, round, payloadRef{offset: off.Int64, length: int(length.Int64), crc: uint32(crc.Int64)})
		case len(p.Blob) == 0 && p.Lost == nil:
			p.Lost = fmt.Errorf("store: partial %d has no payload (its round was closed)", p.ID)
		}
		list = append(list, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap("pending partials", err)
	}
	for i := range list {
		ups, err := s.queryUpdates(ctx, "pending partials", `SELECT `+updateColumns+`
			FROM updates WHERE partial_id = ? AND accepted = 1 ORDER BY id`, list[i].ID)
		if err != nil {
			return nil, err
		}
		list[i].Updates = ups
	}
	return list, nil
}

// LosePartial marks the updates of a partial whose payload was lost
// (PendingPartials reported it Lost) as not accepted, with reason, so that
// their clients can send others for the round, and forgets the payload.
func (t *Tx) LosePartial(id int64, reason string) error {
	err := func() error {
		if _, err := t.exec(`UPDATE updates SET accepted = 0, code = 'store', reason = ? WHERE partial_id = ? AND accepted = 1`,
			reason, id); err != nil {
			return err
		}
		res, err := t.exec(`UPDATE partials SET payload_offset = NULL, payload_len = NULL, payload_crc = NULL, blob = NULL
			WHERE id = ?`, id)
		return affected(res, err, fmt.Sprintf("partial %d", id))
	}()
	return wrap("lose partial", err)
}

// settlePartials forgets the payloads of a closed round's partials (their
// updates' rows stay); the round's payload file goes with its updates'.
func (t *Tx) settlePartials(run string, round int) error {
	_, err := t.exec(`UPDATE partials SET payload_offset = NULL, payload_len = NULL, payload_crc = NULL, blob = NULL
		WHERE run_id = ? AND round = ? AND (blob IS NOT NULL OR payload_offset IS NOT NULL)`, run, round)
	return err
}

// Partials returns the metadata (no payloads) of a run's partials, of one
// round when round > 0.
func (s *Store) Partials(ctx context.Context, runID string, round int) ([]Partial, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, round, shard, received_at, count, weight, bytes, clipped
		FROM partials WHERE run_id = ?1 AND (?2 <= 0 OR round = ?2) ORDER BY id`, runID, round)
	if err != nil {
		return nil, wrap("partials", err)
	}
	defer rows.Close()
	var list []Partial
	for rows.Next() {
		p := Partial{RunID: runID}
		var received sql.NullInt64
		var clipped sql.NullString
		if err := rows.Scan(&p.ID, &p.Round, &p.Shard, &received, &p.Count, &p.Weight, &p.Bytes, &clipped); err != nil {
			return nil, wrap("partials", err)
		}
		p.ReceivedAt = fromMS(received)
		if clipped.Valid {
			json.Unmarshal([]byte(clipped.String), &p.Clipped)
		}
		list = append(list, p)
	}
	return list, wrap("partials", rows.Err())
}
