package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations holds the schema, one step per version: migrations[i] takes a
// database from user_version i to i+1. Steps are append-only: never edit one
// that has shipped, add a new step instead. Keep README.md's "Database schema" section in sync.
//
// The BLOB columns come last in their tables so that reading the metadata
// columns of a row never touches the blob's overflow pages.
var migrations = []string{
	// 1: tables.
	`
CREATE TABLE runs (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL DEFAULT '',
	config         TEXT,
	join_token     TEXT NOT NULL DEFAULT '',
	status         TEXT NOT NULL DEFAULT 'waiting'
	               CHECK (status IN ('waiting', 'running', 'finished', 'stopped', 'failed')),
	created_at     INTEGER NOT NULL,
	started_at     INTEGER,
	finished_at    INTEGER,
	current_round  INTEGER NOT NULL DEFAULT 0,
	model_version  INTEGER NOT NULL DEFAULT 0,
	error          TEXT,
	strategy_state BLOB
);

CREATE TABLE clients (
	run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	id            TEXT NOT NULL,
	kind          TEXT NOT NULL CHECK (kind IN ('browser', 'headless', 'virtual')),
	device        TEXT,
	slice_index   INTEGER NOT NULL DEFAULT 0,
	samples       INTEGER NOT NULL DEFAULT 0,
	label_counts  TEXT,
	first_seen    INTEGER NOT NULL,
	last_seen     INTEGER NOT NULL,
	updates       INTEGER NOT NULL DEFAULT 0,
	accepted      INTEGER NOT NULL DEFAULT 0,
	bytes_up      INTEGER NOT NULL DEFAULT 0,
	bytes_down    INTEGER NOT NULL DEFAULT 0,
	samples_per_s REAL,
	PRIMARY KEY (run_id, id)
);

CREATE TABLE rounds (
	run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	round         INTEGER NOT NULL,
	status        TEXT NOT NULL DEFAULT 'open'
	              CHECK (status IN ('open', 'aggregated', 'failed')),
	started_at    INTEGER NOT NULL,
	deadline_at   INTEGER,
	finished_at   INTEGER,
	selected      TEXT NOT NULL DEFAULT '[]',
	n_selected    INTEGER NOT NULL DEFAULT 0,
	n_received    INTEGER NOT NULL DEFAULT 0,
	n_accepted    INTEGER NOT NULL DEFAULT 0,
	test_accuracy REAL,
	test_loss     REAL,
	bytes_up      INTEGER NOT NULL DEFAULT 0,
	bytes_down    INTEGER NOT NULL DEFAULT 0,
	epsilon       REAL,
	model_version INTEGER,
	metrics       TEXT,
	error         TEXT,
	PRIMARY KEY (run_id, round)
);

CREATE TABLE updates (
	id            INTEGER PRIMARY KEY,
	run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	round         INTEGER NOT NULL,
	client_id     TEXT NOT NULL,
	received_at   INTEGER NOT NULL,
	accepted      INTEGER NOT NULL CHECK (accepted IN (0, 1)),
	reason        TEXT,
	code          TEXT,
	samples       INTEGER NOT NULL DEFAULT 0,
	bytes         INTEGER NOT NULL DEFAULT 0,
	bytes_down    INTEGER NOT NULL DEFAULT 0,
	codec         TEXT NOT NULL DEFAULT '',
	base_version  INTEGER NOT NULL DEFAULT 0,
	loss          REAL,
	accuracy      REAL,
	train_ms      INTEGER NOT NULL DEFAULT 0,
	samples_per_s REAL,
	score         REAL,
	cosine        REAL,
	norm_ratio    REAL,
	excluded      INTEGER NOT NULL DEFAULT 0 CHECK (excluded IN (0, 1)),
	blob          BLOB
);

CREATE TABLE models (
	run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	version       INTEGER NOT NULL,
	round         INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL,
	params        INTEGER NOT NULL,
	codec         TEXT NOT NULL DEFAULT 'float32',
	test_accuracy REAL,
	test_loss     REAL,
	weights       BLOB NOT NULL,
	PRIMARY KEY (run_id, version)
);
`,
	// 2: indexes. Rounds and models of a run are found through their
	// primary keys (run_id first).
	`
CREATE INDEX updates_by_round ON updates (run_id, round);
CREATE UNIQUE INDEX updates_one_accepted ON updates (run_id, round, client_id) WHERE accepted = 1;
`,
	// 3: accountable clients (a secret per client, slices that return to
	// the pool), updates paged by id, and payloads in the payload log
	// (payload_* locate an accepted update's payload in its round's file).
	`
ALTER TABLE clients ADD COLUMN secret_hash BLOB;
ALTER TABLE clients ADD COLUMN released INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1));
ALTER TABLE updates ADD COLUMN payload_offset INTEGER;
ALTER TABLE updates ADD COLUMN payload_len INTEGER;
ALTER TABLE updates ADD COLUMN payload_crc INTEGER;
CREATE INDEX updates_by_run ON updates (run_id, id);
`,
	// 4: asynchronous steps and device profiles. An async step's buffer
	// may hold several updates of one client (it trains again as soon as
	// it is done), so the one-accepted-update-per-round index goes: the
	// coordinator's loop enforces one per task. staleness is how many
	// steps behind the step's model an update was trained; task_at when
	// its task was sent; profile the device profile its client emulates.
	`
DROP INDEX updates_one_accepted;
ALTER TABLE updates ADD COLUMN staleness INTEGER NOT NULL DEFAULT 0;
ALTER TABLE updates ADD COLUMN task_at INTEGER;
ALTER TABLE updates ADD COLUMN profile TEXT;
ALTER TABLE clients ADD COLUMN profile TEXT;
`,
	// 5: partial aggregates from edge shards. A partial's payload (its
	// compressed sum) lives in the round's payload file like an update's;
	// the updates folded into it have no payload of their own and name it
	// in partial_id.
	`
CREATE TABLE partials (
	id             INTEGER PRIMARY KEY,
	run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	round          INTEGER NOT NULL,
	shard          TEXT NOT NULL,
	received_at    INTEGER NOT NULL,
	count          INTEGER NOT NULL,
	weight         INTEGER NOT NULL,
	bytes          INTEGER NOT NULL,
	clipped        TEXT,
	payload_offset INTEGER,
	payload_len    INTEGER,
	payload_crc    INTEGER,
	blob           BLOB
);
CREATE INDEX partials_by_round ON partials (run_id, round);
ALTER TABLE updates ADD COLUMN partial_id INTEGER;
`,
	// 6: the TLS key exchange of each client's latest connection (e.g.
	// X25519MLKEM768), so that a post-quantum path can be seen.
	`
ALTER TABLE clients ADD COLUMN key_exchange TEXT;
`,
}

// SchemaVersion is the user_version of a database that Open has migrated:
// the number of schema migrations this package knows.
const SchemaVersion = 6

// userVersion reads PRAGMA user_version.
func userVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	return v, err
}

// checkVersion returns an error if the database was written by a newer
// schema than steps describes. It only reads.
func checkVersion(ctx context.Context, db *sql.DB, steps []string) error {
	v, err := userVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if v > len(steps) {
		return fmt.Errorf("store: database schema version %d is newer than this program's %d; refusing to open it", v, len(steps))
	}
	return nil
}

// migrate applies the steps the database lacks, each in its own
// transaction together with its user_version bump, so a failing step leaves
// the database at the previous version.
func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	if err := checkVersion(ctx, db, steps); err != nil {
		return err
	}
	for {
		done, err := migrateOne(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next missing step, if any, and reports whether the
// database was already current. The version is read again inside the
// (immediate) transaction so that two processes migrating at once cannot
// apply a step twice.
func migrateOne(ctx context.Context, db *sql.DB, steps []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	v, err := userVersion(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	if v > len(steps) {
		return false, fmt.Errorf("store: database schema version %d is newer than this program's %d; refusing to open it", v, len(steps))
	}
	if v == len(steps) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, steps[v]); err != nil {
		return false, fmt.Errorf("store: migrate to schema version %d: %w", v+1, err)
	}
	// PRAGMA takes no bound parameters; v+1 is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
		return false, fmt.Errorf("store: migrate to schema version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: migrate to schema version %d: %w", v+1, err)
	}
	return false, nil
}
