package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Tx is one write of the store inside a group commit: its methods are the
// store's writes (AddUpdate, OpenRound, CommitRound, ...). The writes of a
// function given to Submit or Do commit together or not at all: when it
// returns an error, nothing it wrote is kept, and the other writes of the
// batch still commit (see writer.run). A Tx is valid only during the
// function it is passed to.
type Tx struct {
	s  *Store
	tx *sql.Tx
	// stmts are the statements prepared in this transaction: a batch runs
	// the same few statements over and over, and preparing one costs SQLite
	// more than running it.
	stmts map[string]*sql.Stmt
	ctx   context.Context // not cancellable: see writer.run
	// logged: payloads were appended to the payload log, which must be
	// synced before the commit; after: what to do once it has committed.
	logged bool
	after  []func()
}

// Store-wide limits of the group commit.
const (
	// maxBatch is the most writes one transaction takes.
	maxBatch = 1024
)

// ErrClosed is returned for writes submitted after Close.
var ErrClosed = errors.New("store: closed")

// job is one queued write.
type job struct {
	ctx  context.Context
	op   string // its name, for the observer
	at   time.Time
	fn   func(*Tx) error
	done func(error) // called from the writer goroutine
	err  error
}

// writer group-commits the store's writes. Every write is a job on one FIFO
// queue; one goroutine takes whatever is queued (up to maxBatch jobs), runs
// each in its own savepoint of one transaction and commits once, so writes
// that arrive together share one fsync, and jobs run in the order they were
// submitted. The queue is unbounded so that submitting never blocks: callers
// that must not wait (the coordinator's loop) use Submit.
type writer struct {
	s  *Store
	db *sql.DB

	mu     sync.Mutex
	queue  []*job
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

func newWriter(s *Store, db *sql.DB) *writer {
	w := &writer{s: s, db: db, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

// submit queues j; it calls j.done with ErrClosed at once after close.
func (w *writer) submit(j *job) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		j.done(ErrClosed)
		return
	}
	w.queue = append(w.queue, j)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// close stops taking jobs, lets the queued ones run, and waits for them.
func (w *writer) close() {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	<-w.done
}

func (w *writer) loop() {
	defer close(w.done)
	for {
		w.mu.Lock()
		n := min(len(w.queue), maxBatch)
		batch := w.queue[:n:n]
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil // let the backing array go
		}
		closed := w.closed
		w.mu.Unlock()
		if n == 0 {
			if closed {
				return
			}
			<-w.wake
			continue
		}
		w.run(batch)
	}
}

// run executes a batch in one transaction and reports each job's result
// once the commit is durable. It is optimistic: the jobs run back to back
// without savepoints (a savepoint makes SQLite copy every page it touches
// to a sub-journal first, which costs more than the writes themselves).
// When a job fails, the transaction is rolled back and every job of the
// batch runs again in a transaction of its own, so each gets exactly its
// own outcome. Jobs fail rarely (the engine checks before it writes), so
// batches almost always commit in one go.
func (w *writer) run(batch []*job) {
	// The jobs' own contexts are checked before each starts but not passed
	// down: an interrupted statement inside an explicit transaction makes
	// SQLite roll back the whole transaction, the other jobs' writes too.
	ctx := context.Background()
	live := batch[:0:0]
	for _, j := range batch {
		if j.err = j.ctx.Err(); j.err == nil {
			live = append(live, j)
		}
	}
	err := w.inTx(ctx, live)
	if errors.Is(err, errJobFailed) && len(live) > 1 {
		// Replay one job per transaction.
		for _, j := range live {
			j.err = nil
			if err := w.inTx(ctx, []*job{j}); err != nil && !errors.Is(err, errJobFailed) {
				j.err = err
			}
		}
		err = nil
	}
	for _, j := range batch {
		if err != nil && j.err == nil {
			j.err = err
		}
		if obs := w.s.observe; obs != nil {
			obs(j.op, time.Since(j.at), j.err)
		}
		j.done(j.err)
	}
}

// errJobFailed reports that a job of a transaction returned an error (in
// its err): the transaction was rolled back.
var errJobFailed = errors.New("store: a write failed")

// inTx runs jobs in one transaction: it commits when all of them succeed,
// and rolls back (returning errJobFailed) when one fails, leaving that
// job's error in its err.
func (w *writer) inTx(ctx context.Context, jobs []*job) error {
	if len(jobs) == 0 {
		return nil
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	t := &Tx{s: w.s, tx: tx, ctx: ctx, stmts: map[string]*sql.Stmt{}}
	for _, j := range jobs {
		if j.err = runJob(t, j); j.err != nil {
			tx.Rollback()
			return errJobFailed
		}
	}
	// The rows may only commit once the payloads they point at are durable.
	if t.logged {
		if err := w.s.log.syncAll(); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	for _, f := range t.after {
		f()
	}
	return nil
}

// runJob runs one job, turning a panic into an error.
func runJob(t *Tx, j *job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
	}()
	return j.fn(t)
}

// Submit queues fn, named op (for the observer, "add_update", say), to
// run in the next group commit and returns at once. done, when not nil,
// is called with fn's error (or the commit's) once the write is durable,
// from the store's writer goroutine: it must not block or call the store
// synchronously. Writes run in the order they are submitted; one whose
// ctx is done before it starts is skipped (done gets ctx's error).
func (s *Store) Submit(ctx context.Context, op string, fn func(*Tx) error, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.wr.submit(&job{ctx: ctx, op: op, at: time.Now(), fn: fn, done: done})
}

// Do runs fn, named op, as one write of a group commit (fn's writes commit
// together or not at all) and waits until it is durable or failed. The
// write is not cancelled with ctx: a caller going away (a request whose
// client hung up, a server shutting down between evaluating a round and
// committing it) must not turn a good write into a failed one. Do stops
// waiting after writeTimeout.
func (s *Store) Do(ctx context.Context, op string, fn func(*Tx) error) error {
	res := make(chan error, 1)
	s.Submit(context.WithoutCancel(ctx), op, fn, func(err error) { res <- err })
	t := time.NewTimer(writeTimeout)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-t.C:
		return fmt.Errorf("store: %s: no answer from the writer within %v", op, writeTimeout)
	}
}

// tx is Do.
func (s *Store) tx(ctx context.Context, op string, fn func(*Tx) error) error {
	return s.Do(ctx, op, fn)
}

// exec runs a statement of the write.
func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(t.ctx, args...)
}

// queryRow runs a query of the write.
func (t *Tx) queryRow(query string, args ...any) *sql.Row {
	st, err := t.stmt(query)
	if err != nil {
		return t.tx.QueryRowContext(t.ctx, query, args...) // reports the same error
	}
	return st.QueryRowContext(t.ctx, args...)
}

// stmt returns query prepared in the transaction, once per transaction
// (the statements close with it).
func (t *Tx) stmt(query string) (*sql.Stmt, error) {
	st := t.stmts[query]
	if st == nil {
		var err error
		if st, err = t.tx.PrepareContext(t.ctx, query); err != nil {
			return nil, err
		}
		t.stmts[query] = st
	}
	return st, nil
}
