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
}

// validKind reports whether kind is one the schema allows.
func validKind(kind string) bool {
	return kind == KindBrowser || kind == KindHeadless || kind == KindVirtual
}

// UpsertClient inserts c, or, when the client exists, updates its kind,
// device, slice_index, samples, label_counts and last_seen, keeping
// first_seen and the counters (updates, accepted, bytes, samples_per_s). On
// insert a zero LastSeen is now and a zero FirstSeen is LastSeen. An unknown
// run gives ErrNotFound.
func (s *Store) UpsertClient(ctx context.Context, c *Client) error {
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
	last := s.msOrNow(c.LastSeen)
	first := last
	if !c.FirstSeen.IsZero() {
		first = c.FirstSeen.UnixMilli()
	}
	_, err = s.exec(ctx, "upsert_client", `INSERT INTO clients
		(run_id, id, kind, device, slice_index, samples, label_counts, first_seen, last_seen,
		 updates, accepted, bytes_up, bytes_down, samples_per_s)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, id) DO UPDATE SET
		kind = excluded.kind, device = excluded.device, slice_index = excluded.slice_index,
		samples = excluded.samples, label_counts = excluded.label_counts,
		last_seen = max(last_seen, excluded.last_seen)`,
		c.RunID, c.ID, c.Kind, device, c.SliceIndex, c.Samples, marshalList(c.LabelCounts),
		first, last, c.Updates, c.Accepted, c.BytesUp, c.BytesDown, c.SamplesPerS)
	return wrap("upsert client", err)
}

// TouchClient records that the client was seen at seen (last_seen never
// moves back) and that bytesDown more bytes were sent to it. An unknown
// client gives ErrNotFound.
func (s *Store) TouchClient(ctx context.Context, runID, id string, seen time.Time, bytesDown int64) error {
	if bytesDown < 0 {
		return fmt.Errorf("store: touch client %q: negative byte count %d", id, bytesDown)
	}
	res, err := s.exec(ctx, "touch_client", `UPDATE clients SET
		last_seen = max(last_seen, ?), bytes_down = bytes_down + ?
		WHERE run_id = ? AND id = ?`,
		s.msOrNow(seen), bytesDown, runID, id)
	return wrap("touch client", affected(res, err, fmt.Sprintf("client %q of run %q", id, runID)))
}

const clientColumns = `run_id, id, kind, device, slice_index, samples, label_counts,
	first_seen, last_seen, updates, accepted, bytes_up, bytes_down, samples_per_s`

// scanClient reads one row of clientColumns.
func scanClient(row interface{ Scan(...any) error }) (*Client, error) {
	var c Client
	var device, labels sql.NullString
	var first, last sql.NullInt64
	var speed sql.NullFloat64
	err := row.Scan(&c.RunID, &c.ID, &c.Kind, &device, &c.SliceIndex, &c.Samples, &labels,
		&first, &last, &c.Updates, &c.Accepted, &c.BytesUp, &c.BytesDown, &speed)
	if err != nil {
		return nil, err
	}
	c.Device = rawJSON(device)
	if c.LabelCounts, err = unmarshalList[int]("label_counts", labels); err != nil {
		return nil, err
	}
	c.FirstSeen, c.LastSeen = fromMS(first), fromMS(last)
	c.SamplesPerS = speed.Float64
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
