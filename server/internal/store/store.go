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
	w       *sql.DB // writes: one connection
	r       *sql.DB // reads: query-only connections
	now     func() time.Time
	observe func(op string, d time.Duration, err error)
	base    url.URL // the database's "file:" URI, without pragmas
	memName string  // memdb name of an in-memory database, deleted by Close
}

// writeTimeout bounds one write (waiting for the writer connection, the
// transaction and its fsync). Writes do not stop when their caller's context
// is cancelled (see tx), so this is what ends a write that cannot finish.
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

// WithWriteObserver makes the store call observe after every write (each
// is one transaction, fsynced) with the operation's name (such as
// "commit_round" or "add_update"; the exported method in snake case), how
// long it took, waiting for the writer connection included, and its error.
// observe must be quick and safe for concurrent use; metrics use it.
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
	return s, nil
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

// Close closes the database. It frees an in-memory database.
func (s *Store) Close() error {
	var errs []error
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

// tx runs fn in one write transaction (BEGIN IMMEDIATE), committing when fn
// returns nil and rolling back otherwise. op names the write for the
// observer.
//
// A write is not interrupted when ctx is cancelled: a caller going away (a
// request whose client hung up, the coordinator shutting down between
// evaluating a round and committing it) must not turn a good write into a
// failed one that its caller then reports as a failed round or run. Each
// write is short and bounded by writeTimeout instead. fn must use the
// context it is given.
func (s *Store) tx(ctx context.Context, op string, fn func(context.Context, *sql.Tx) error) (err error) {
	ctx, done := s.writing(ctx, op)
	defer func() { done(err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// exec runs one write statement (its own transaction), as tx does.
func (s *Store) exec(ctx context.Context, op, query string, args ...any) (res sql.Result, err error) {
	ctx, done := s.writing(ctx, op)
	defer func() { done(err) }()
	return s.w.ExecContext(ctx, query, args...)
}

// writing detaches a write from ctx's cancellation (keeping its values),
// bounds it with writeTimeout, and returns the function that ends it and
// reports it to the observer.
func (s *Store) writing(ctx context.Context, op string) (context.Context, func(error)) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	return ctx, func(err error) {
		cancel()
		if s.observe != nil {
			s.observe(op, time.Since(start), err)
		}
	}
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
