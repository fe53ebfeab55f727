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
// store's writes (AddUpdate, OpenRound, CommitRound, ...). A Tx runs in its
// own savepoint of a shared transaction, so when its function returns an
// error everything it wrote is rolled back and the other writes of the batch
// still commit. A Tx is valid only during the function it is passed to.
type Tx struct {
	s   *Store
	tx  *sql.Tx
	ctx context.Context // not cancellable: see writer.run
}

// Store-wide limits of the group commit.
const (
	// maxBatch is the most writes one transaction takes.
	maxBatch = 256
)

// ErrClosed is returned for writes submitted after Close.
var ErrClosed = errors.New("store: closed")

// job is one queued write.
type job struct {
	ctx  context.Context
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
	s       *Store
	db      *sql.DB
	observe func(op string, d time.Duration)

	mu     sync.Mutex
	queue  []*job
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

func newWriter(s *Store, db *sql.DB, observe func(string, time.Duration)) *writer {
	w := &writer{s: s, db: db, observe: observe, wake: make(chan struct{}, 1), done: make(chan struct{})}
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

// run executes a batch in one transaction, one savepoint per job, and
// reports each job's result once the commit is durable.
func (w *writer) run(batch []*job) {
	start := time.Now()
	// The jobs' own contexts are checked before each starts but not passed
	// down: an interrupted statement inside an explicit transaction makes
	// SQLite roll back the whole transaction, the other jobs' writes too.
	ctx := context.Background()
	tx, err := w.db.BeginTx(ctx, nil)
	if err == nil {
		t := &Tx{s: w.s, tx: tx, ctx: ctx}
		for _, j := range batch {
			j.err = runJob(ctx, t, j)
		}
		err = tx.Commit()
	}
	if w.observe != nil {
		w.observe("commit", time.Since(start))
	}
	for _, j := range batch {
		if err != nil && j.err == nil {
			j.err = fmt.Errorf("store: commit: %w", err)
		}
		j.done(j.err)
	}
}

// runJob runs one job in a savepoint, rolling the savepoint back when the
// job fails (or panics, which is re-raised after the rollback).
func runJob(ctx context.Context, t *Tx, j *job) (err error) {
	if err := j.ctx.Err(); err != nil {
		return err
	}
	if _, err := t.tx.ExecContext(ctx, `SAVEPOINT job`); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			t.tx.ExecContext(ctx, `ROLLBACK TO job`)
		}
		if _, rerr := t.tx.ExecContext(ctx, `RELEASE job`); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err = j.fn(t); err != nil {
		return err
	}
	ok = true
	return nil
}

// Submit queues fn to run in the next group commit and returns at once.
// done, when not nil, is called with fn's error (or the commit's) once the
// write is durable, from the store's writer goroutine: it must not block or
// call the store synchronously. Writes run in the order they are submitted.
func (s *Store) Submit(ctx context.Context, fn func(*Tx) error, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.wr.submit(&job{ctx: ctx, fn: fn, done: done})
}

// Do runs fn as one write of a group commit (its own savepoint: fn's
// writes commit together or not at all) and waits until it is durable, or
// failed, or ctx is done (the write may then still commit later).
func (s *Store) Do(ctx context.Context, fn func(*Tx) error) error { return s.tx(ctx, fn) }

// tx is Do.
func (s *Store) tx(ctx context.Context, fn func(*Tx) error) error {
	res := make(chan error, 1)
	s.Submit(ctx, fn, func(err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exec runs a statement of the write.
func (t *Tx) exec(query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, query, args...)
}

// queryRow runs a query of the write.
func (t *Tx) queryRow(query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, query, args...)
}
