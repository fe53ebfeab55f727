package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // registers the "sqlite3" database/sql driver
	"github.com/ncruces/go-sqlite3/vfs/memdb"
)

// Errors callers branch on with errors.Is.
var (
	// ErrNotFound reports that the run, client, round, update or model
	// named in a call does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate reports that a row with the same key already exists: a
	// second accepted update from one client in one round, a model version
	// or run ID stored twice, or a round that was already closed.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrResumed is returned by OpenRound when the round already exists and
	// is still open; the round passed in has been filled with the stored row.
	ErrResumed = errors.New("store: round already open; resumed")
	// ErrNotOpen reports a write that needs an open round (an accepted
	// update, CommitRound, FailRound) to a round that is aggregated or failed.
	ErrNotOpen = errors.New("store: round not open")
)

// busyTimeoutMS is how long a connection waits for a lock held by another
// connection or process (a sqlite3 shell) before failing with SQLITE_BUSY.
const busyTimeoutMS = 10000

// MemoryPath is the path that makes Open create a private in-memory database.
const MemoryPath = ":memory:"

// Store is the SQLite-backed state of the server. It is safe for concurrent
// use by multiple goroutines.
type Store struct {
	w       *sql.DB // writes: one connection, used by wr's goroutine
	wr      *writer // group commit of every write
	r       *sql.DB // reads: query-only connections
	now     func() time.Time
	observe func(op string, d time.Duration, err error)
	base    url.URL     // the database's "file:" URI, without pragmas
	memName string      // memdb name of an in-memory database, deleted by Close
	log     *payloadLog // payloads of accepted updates; nil in memory
}

// writeTimeout bounds how long a synchronous write waits for its group
// commit. Writes do not stop when their caller's context is cancelled (see
// Do), so this is what ends a wait for a write that cannot finish.
const writeTimeout = busyTimeoutMS*time.Millisecond + 20*time.Second

// Option configures Open.
type Option func(*Store)

// WithClock makes the store read the time from now where a call does not
// pass one (SetRunStatus, FailRound, and zero times that default to now).
func WithClock(now func() time.Time) Option {
	if now == nil {
		panic("store: WithClock(nil)")
	}
	return func(s *Store) { s.now = now }
}

// WithWriteObserver makes the store call observe after every write, once
// it is durable (or failed), with the operation's name (such as
// "commit_round" or "add_update"), how long it took from submission to the
// end of its group commit, and its error. observe is called from the writer
// goroutine: it must be quick; metrics use it.
func WithWriteObserver(observe func(op string, d time.Duration, err error)) Option {
	if observe == nil {
		panic("store: WithWriteObserver(nil)")
	}
	return func(s *Store) { s.observe = observe }
}

// Open opens (creating it if needed) the database at path, a file name, or
// a private in-memory database when path is MemoryPath (":memory:"; each
// Open gets its own, freed by Close). It sets the connection pragmas, enables
// WAL for a file, and migrates the schema to SchemaVersion. A database whose
// schema is newer than this package's is refused and left untouched.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	s := &Store{now: time.Now}
	for _, o := range opts {
		o(s)
	}
	base, err := s.baseURI(path)
	if err != nil {
		return nil, err
	}
	s.base = base
	if err := s.openPools(ctx, base); err != nil {
		s.Close()
		return nil, err
	}
	if s.memName == "" {
		s.log = newPayloadLog(base.Path)
		if err := s.sweepPayloads(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// sweepPayloads deletes the payload files of rounds that are not open.
func (s *Store) sweepPayloads(ctx context.Context) error {
	rows, err := s.r.QueryContext(ctx, `SELECT run_id, round FROM rounds WHERE status = 'open'`)
	if err != nil {
		return wrap("sweep payloads", err)
	}
	open := map[string]bool{}
	for rows.Next() {
		var run string
		var round int
		if err := rows.Scan(&run, &round); err != nil {
			rows.Close()
			return wrap("sweep payloads", err)
		}
		open[fmt.Sprint(run, "/", round)] = true
	}
	rows.Close()
	return s.log.sweep(func(run string, round int) bool { return open[fmt.Sprint(run, "/", round)] })
}

// baseURI returns the "file:" URI of path, registering an in-memory
// database for MemoryPath.
func (s *Store) baseURI(path string) (url.URL, error) {
	if path == MemoryPath {
		s.memName = "qflare-store-" + rand.Text()
		memdb.Create(s.memName, nil)
		return url.URL{Scheme: "file", OmitHost: true, Path: "/" + s.memName,
			RawQuery: url.Values{"vfs": {"memdb"}}.Encode()}, nil
	}
	return fileURI(path)
}

// dsn adds pragmas to base. busy_timeout comes first: once any _pragma is
// given the driver no longer sets its own busy timeout, and every later
// pragma may already need the lock.
func dsn(base url.URL, pragmas ...string) string {
	q := base.Query()
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	base.RawQuery = q.Encode()
	return base.String()
}

// openPools opens the writer, checks the schema version before anything
// can change the file, switches a file to WAL, migrates, then opens readers.
//
// synchronous=FULL: in WAL mode every commit syncs the log, so an update
// acknowledged to a client survives a crash or power loss (NORMAL may lose
// the last commits on power loss). foreign_keys=ON: SQLite leaves foreign
// keys off unless each connection asks.
func (s *Store) openPools(ctx context.Context, base url.URL) error {
	w, err := sql.Open("sqlite3", dsn(base, "synchronous(full)", "foreign_keys(on)"))
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	s.w = w
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	if err := checkVersion(ctx, w, migrations); err != nil {
		return err
	}
	if s.memName == "" {
		if err := enableWAL(ctx, w); err != nil {
			return err
		}
	}
	if err := migrate(ctx, w, migrations); err != nil {
		return err
	}
	s.wr = newWriter(s, w)
	r, err := sql.Open("sqlite3", dsn(base, "query_only(on)"))
	if err != nil {
		return fmt.Errorf("store: open: %w", err)
	}
	s.r = r
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return nil
}

// enableWAL switches the database file to write-ahead logging (a setting
// stored in the file) and checks that it took.
func enableWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode = wal`).Scan(&mode); err != nil {
		return fmt.Errorf("store: enable WAL: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("store: journal_mode is %q after asking for wal", mode)
	}
	return nil
}

// Close waits for the writes already submitted, then closes the database;
// later writes fail with ErrClosed. It frees an in-memory database.
func (s *Store) Close() error {
	if s.wr != nil {
		s.wr.close()
	}
	var errs []error
	if s.log != nil {
		errs = append(errs, s.log.close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.memName != "" {
		memdb.Delete(s.memName)
	}
	return errors.Join(errs...)
}

// Ping checks that the database answers: it reads the schema version
// through a read connection, which touches the file (or the in-memory
// database). Health checks use it.
func (s *Store) Ping(ctx context.Context) error {
	var v int
	if err := s.r.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// wrap prefixes err with the operation and maps SQLite constraint errors to
// ErrDuplicate (unique or primary key) and ErrNotFound (a foreign key: the
// run does not exist).
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sqlite3.CONSTRAINT_UNIQUE), errors.Is(err, sqlite3.CONSTRAINT_PRIMARYKEY):
		return fmt.Errorf("store: %s: %w: %w", op, ErrDuplicate, err)
	case errors.Is(err, sqlite3.CONSTRAINT_FOREIGNKEY):
		return fmt.Errorf("store: %s: run %w: %w", op, ErrNotFound, err)
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// affected returns an ErrNotFound naming what when res changed no row.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
