package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Client kinds, as stored in clients.kind.
const (
	KindBrowser  = "browser"
	KindHeadless = "headless"
	KindVirtual  = "virtual"
)

// Client is one participant of a run (a row of clients).
type Client struct {
	RunID       string
	ID          string
	Kind        string          // KindBrowser, KindHeadless or KindVirtual
	Device      json.RawMessage // what the client reported about itself; valid JSON or empty
	SliceIndex  int             // which slice of the training set it holds
	Samples     int             // training examples in that slice
	LabelCounts []int           // examples per label in that slice
	FirstSeen   time.Time
	LastSeen    time.Time
	Updates     int     // updates received, accepted or not
	Accepted    int     // updates accepted
	BytesUp     int64   // encoded update bytes received, accepted or not
	BytesDown   int64   // bytes sent to the client (models)
	SamplesPerS float64 // training speed last measured
	// SecretHash is the SHA-256 of the secret the client got at its first
	// welcome and must show to rejoin under its id (nil for clients stored
	// before secrets existed: such an id cannot be claimed).
	SecretHash []byte
	// Released reports that the client's slice went back to the pool (it
	// was gone longer than the run's grace period): it holds no slice.
	Released bool
	// Profile is the device profile the client emulates ("" for none).
	Profile string
}

// validKind reports whether kind is one the schema allows.
func validKind(kind string) bool {
	return kind == KindBrowser || kind == KindHeadless || kind == KindVirtual
}

// UpsertClient inserts c, or, when the client exists, updates its kind,
// device, slice_index, samples, label_counts, secret_hash, released and
// last_seen, keeping first_seen and the counters (updates, accepted, bytes,
// samples_per_s). On insert a zero LastSeen is now and a zero FirstSeen is
// LastSeen. An unknown run gives ErrNotFound.
func (s *Store) UpsertClient(ctx context.Context, c *Client) error {
	return s.tx(ctx, "upsert_client", func(t *Tx) error { return t.UpsertClient(c) })
}

// UpsertClient is Store.UpsertClient inside a group commit.
func (t *Tx) UpsertClient(c *Client) error {
	if c.RunID == "" || c.ID == "" {
		return fmt.Errorf("store: upsert client: empty run or client ID")
	}
	if !validKind(c.Kind) {
		return fmt.Errorf("store: upsert client %q: invalid kind %q", c.ID, c.Kind)
	}
	device, err := jsonOrNull("device", c.Device)
	if err != nil {
		return fmt.Errorf("store: upsert client %q: %w", c.ID, err)
	}
	last := t.s.msOrNow(c.LastSeen)
	first := last
	if !c.FirstSeen.IsZero() {
		first = c.FirstSeen.UnixMilli()
	}
	_, err = t.exec(`INSERT INTO clients
		(run_id, id, kind, device, slice_index, samples, label_counts, first_seen, last_seen,
		 updates, accepted, bytes_up, bytes_down, samples_per_s, secret_hash, released, profile)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, id) DO UPDATE SET
		kind = excluded.kind, device = excluded.device, slice_index = excluded.slice_index,
		samples = excluded.samples, label_counts = excluded.label_counts,
		secret_hash = excluded.secret_hash, released = excluded.released, profile = excluded.profile,
		last_seen = max(last_seen, excluded.last_seen)`,
		c.RunID, c.ID, c.Kind, device, c.SliceIndex, c.Samples, marshalList(c.LabelCounts),
		first, last, c.Updates, c.Accepted, c.BytesUp, c.BytesDown, c.SamplesPerS,
		blobOrNull(c.SecretHash), boolInt(c.Released), textOrNull(c.Profile))
	return wrap("upsert client", err)
}

// ClientStats is a client's telemetry as the coordinator keeps it in
// memory: written with the round that ends (CommitRound, FailRound) or by
// SaveClientStats, as absolute values.
type ClientStats struct {
	ID          string
	LastSeen    time.Time
	Updates     int
	Accepted    int
	BytesUp     int64
	BytesDown   int64
	SamplesPerS float64
	Released    bool
}

// SaveClientStats writes the telemetry of clients of a run. Clients that
// do not exist are skipped.
func (s *Store) SaveClientStats(ctx context.Context, runID string, stats []ClientStats) error {
	return s.tx(ctx, "save_client_stats", func(t *Tx) error { return wrap("save client stats", t.saveClientStats(runID, stats)) })
}

// SaveClientStats is Store.SaveClientStats inside a group commit.
func (t *Tx) SaveClientStats(runID string, stats []ClientStats) error {
	return wrap("save client stats", t.saveClientStats(runID, stats))
}

func (t *Tx) saveClientStats(runID string, stats []ClientStats) error {
	if len(stats) == 0 {
		return nil
	}
	stmt, err := t.tx.PrepareContext(t.ctx, `UPDATE clients SET last_seen = max(last_seen, ?),
		updates = ?, accepted = ?, bytes_up = ?, bytes_down = ?,
		samples_per_s = CASE WHEN ? > 0 THEN ? ELSE samples_per_s END, released = ?
		WHERE run_id = ? AND id = ?`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, c := range stats {
		if c.Updates < 0 || c.Accepted < 0 || c.BytesUp < 0 || c.BytesDown < 0 {
			return fmt.Errorf("client %q: negative counter", c.ID)
		}
		if _, err := stmt.ExecContext(t.ctx, t.s.msOrNow(c.LastSeen), c.Updates, c.Accepted, c.BytesUp,
			c.BytesDown, c.SamplesPerS, c.SamplesPerS, boolInt(c.Released), runID, c.ID); err != nil {
			return err
		}
	}
	return nil
}

const clientColumns = `run_id, id, kind, device, slice_index, samples, label_counts,
	first_seen, last_seen, updates, accepted, bytes_up, bytes_down, samples_per_s, secret_hash, released, profile`

// scanClient reads one row of clientColumns.
func scanClient(row interface{ Scan(...any) error }) (*Client, error) {
	var c Client
	var device, labels sql.NullString
	var first, last sql.NullInt64
	var speed sql.NullFloat64
	var profile sql.NullString
	err := row.Scan(&c.RunID, &c.ID, &c.Kind, &device, &c.SliceIndex, &c.Samples, &labels,
		&first, &last, &c.Updates, &c.Accepted, &c.BytesUp, &c.BytesDown, &speed, &c.SecretHash, &c.Released, &profile)
	if err != nil {
		return nil, err
	}
	c.Device = rawJSON(device)
	if c.LabelCounts, err = unmarshalList[int]("label_counts", labels); err != nil {
		return nil, err
	}
	c.FirstSeen, c.LastSeen = fromMS(first), fromMS(last)
	c.SamplesPerS, c.Profile = speed.Float64, profile.String
	return &c, nil
}

// Client returns one client of a run, or ErrNotFound.
func (s *Store) Client(ctx context.Context, runID, id string) (*Client, error) {
	c, err := scanClient(s.r.QueryRowContext(ctx,
		`SELECT `+clientColumns+` FROM clients WHERE run_id = ? AND id = ?`, runID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: client %q of run %q: %w", id, runID, ErrNotFound)
	}
	return c, wrap("client", err)
}

// Clients returns the clients of a run in the order they were first seen.
func (s *Store) Clients(ctx context.Context, runID string) ([]Client, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+clientColumns+` FROM clients
		WHERE run_id = ? ORDER BY first_seen, id`, runID)
	if err != nil {
		return nil, wrap("clients", err)
	}
	defer rows.Close()
	var list []Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap("clients", err)
		}
		list = append(list, *c)
	}
	return list, wrap("clients", rows.Err())
}
