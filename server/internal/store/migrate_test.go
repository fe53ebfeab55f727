package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

func TestSchemaVersion(t *testing.T) {
	t.Parallel()
	if len(migrations) != SchemaVersion {
		t.Errorf("len(migrations) = %d; want SchemaVersion %d", len(migrations), SchemaVersion)
	}
}

// rawDB opens dsn through the driver without the store, closed when t ends.
func rawDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatalf("sql.Open(%q): %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustExec runs statements on db.
func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("Exec(%.60q): %v", q, err)
		}
	}
}

func TestMigrateFromV1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempDB(t)
	// A database as version 1 of the schema left it, with data.
	old := rawDB(t, "file:"+path)
	mustExec(t, old, migrations[0], `PRAGMA user_version = 1`,
		`INSERT INTO runs (id, name, created_at) VALUES ('r1', 'old run', 1000)`,
		`INSERT INTO rounds (run_id, round, started_at) VALUES ('r1', 1, 2000)`,
		`INSERT INTO updates (run_id, round, client_id, received_at, accepted, blob)
		 VALUES ('r1', 1, 'c1', 3000, 1, x'0102'), ('r1', 1, 'c1', 3001, 0, NULL)`)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openPath(t, path)
	v, err := userVersion(ctx, s.w)
	if err != nil || v != SchemaVersion {
		t.Fatalf("user_version after Open = %d, %v; want %d", v, err, SchemaVersion)
	}
	for _, index := range []string{"updates_by_round", "updates_by_run"} {
		var n int
		if err := s.r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?`, index).Scan(&n); err != nil || n != 1 {
			t.Errorf("index %q: count %d, %v; want 1", index, n, err)
		}
	}
	r, err := s.Run(ctx, "r1")
	if err != nil || r.Name != "old run" || r.CreatedAt.UnixMilli() != 1000 {
		t.Errorf("Run(%q) after migration = %+v, %v; want the old run", "r1", r, err)
	}
	pending, err := s.PendingUpdates(ctx, "r1", 1)
	if err != nil || len(pending) != 1 || !bytes.Equal(pending[0].Blob, []byte{1, 2}) {
		t.Errorf("PendingUpdates after migration = %+v, %v; want the one old accepted update", pending, err)
	}
	// Version 4 columns read back on old rows with their defaults, and new
	// rows keep what they are given.
	if pending[0].Staleness != 0 || !pending[0].TaskAt.IsZero() || pending[0].Profile != "" {
		t.Errorf("an old row after migration = %+v; want staleness 0, no task time, no profile", pending[0])
	}
	taskAt := time.UnixMilli(5000)
	if _, err = s.AddUpdate(ctx, &Update{RunID: "r1", Round: 1, ClientID: "c1", Accepted: true, Staleness: 3, TaskAt: taskAt, Profile: "phone-low"}); err != nil {
		t.Fatal(err)
	}
	pending, err = s.PendingUpdates(ctx, "r1", 1)
	if err != nil || len(pending) != 2 || pending[1].Staleness != 3 || !pending[1].TaskAt.Equal(taskAt) || pending[1].Profile != "phone-low" {
		t.Errorf("PendingUpdates = %+v, %v; want the new row with staleness 3, its task time and profile", pending, err)
	}
}

func TestOpenNewerVersionRefused(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	db := rawDB(t, "file:"+path)
	mustExec(t, db, `CREATE TABLE future (x)`, fmt.Sprintf(`PRAGMA user_version = %d`, SchemaVersion+1))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatalf("Open(newer database) succeeded; want an error")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open(newer database) = %v; want an error saying the schema is newer", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Open(newer database) changed the file (%d bytes before, %d after)", len(before), len(after))
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(newer database) left a -wal file: %v", err)
	}
}

func TestMigrateFailingStepRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := rawDB(t, memdb.TestDB(t))
	good := []string{`CREATE TABLE a (x)`, `CREATE TABLE b (y); INSERT INTO b VALUES (1)`}
	bad := []string{good[0], `CREATE TABLE b (y); INSERT INTO nosuch VALUES (1)`}

	if err := migrate(ctx, db, bad); err == nil {
		t.Fatalf("migrate(bad step 2) succeeded; want an error")
	}
	if v, err := userVersion(ctx, db); err != nil || v != 1 {
		t.Errorf("user_version after failed step 2 = %d, %v; want 1", v, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'b'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table b after failed step: count %d, %v; want 0 (rolled back)", n, err)
	}

	for range 2 { // the second run finds nothing to do
		if err := migrate(ctx, db, good); err != nil {
			t.Fatalf("migrate(good): %v", err)
		}
		if v, err := userVersion(ctx, db); err != nil || v != 2 {
			t.Errorf("user_version after migrate(good) = %d, %v; want 2", v, err)
		}
	}
	if err := db.QueryRow(`SELECT count(*) FROM b`).Scan(&n); err != nil || n != 1 {
		t.Errorf("rows in b = %d, %v; want 1 (step 2 applied once)", n, err)
	}
	if err := migrate(ctx, db, good[:1]); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate(fewer steps than the database) = %v; want a newer-version error", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := tempDB(t)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, s, "r1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPath(t, path)
	if _, err := s.Run(ctx, "r1"); err != nil {
		t.Errorf("Run(%q) after reopening = %v", "r1", err)
	}
}
