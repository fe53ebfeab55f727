package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

// ErrUnknownRun is returned for a run id the coordinator does not have.
var ErrUnknownRun = errors.New("coord: unknown run")

// Deps are what a Coordinator needs from the outside.
type Deps struct {
	Store *store.Store
	// Data returns a dataset by name ("mnist", "cifar10"), cached.
	Data func(name string) (train, test *data.Set, err error)
	Bus  *Bus
	Log  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// EvalWorkers is the number of goroutines evaluating a model (default
	// GOMAXPROCS).
	EvalWorkers int
	// SliceURL returns the URL a client fetches its slice from, given the
	// run and client ids (default "/api/runs/RUN/slice?client=ID").
	SliceURL func(run, client string) string
}

// Coordinator runs federated-learning runs. Safe for concurrent use.
type Coordinator struct {
	deps      Deps
	decodeSem chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*Run
}

// New returns a coordinator. Call Resume to restart stored runs, and Close
// to stop.
func New(deps Deps) *Coordinator {
	if deps.Store == nil || deps.Data == nil {
		panic("coord: Deps.Store and Deps.Data are required")
	}
	if deps.Bus == nil {
		deps.Bus = NewBus()
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.EvalWorkers <= 0 {
		deps.EvalWorkers = runtime.GOMAXPROCS(0)
	}
	if deps.SliceURL == nil {
		deps.SliceURL = func(run, client string) string {
			return fmt.Sprintf("/api/runs/%s/slice?client=%s", run, client)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Coordinator{deps: deps, ctx: ctx, cancel: cancel, runs: map[string]*Run{},
		decodeSem: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// Bus returns the event bus.
func (c *Coordinator) Bus() *Bus { return c.deps.Bus }

// Store returns the store.
func (c *Coordinator) Store() *store.Store { return c.deps.Store }

// Run returns the live run with this id.
func (c *Coordinator) Run(id string) (*Run, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.runs[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRun, id)
	}
	return r, nil
}

// Runs returns the live runs.
func (c *Coordinator) Runs() []*Run {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := make([]*Run, 0, len(c.runs))
	for _, r := range c.runs {
		rs = append(rs, r)
	}
	return rs
}

// CreateRun validates cfg, stores a new run with its initial model and
// starts it. It returns the run (its join token is in Run.Token).
func (c *Coordinator) CreateRun(ctx context.Context, cfg Config) (*Run, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	r, err := c.newRun(ctx, cfg, newID("run"), newToken())
	if err != nil {
		return nil, err
	}
	if err := r.create(ctx); err != nil {
		return nil, err
	}
	c.start(r)
	c.deps.Bus.Publish(Event{Type: EvRunCreated, Run: r.id, Data: r.View()})
	return r, nil
}

// Resume restarts every unfinished run in the store: each continues from its
// latest model, and an open round gets back the updates it had accepted.
func (c *Coordinator) Resume(ctx context.Context) error {
	runs, err := c.deps.Store.Runs(ctx)
	if err != nil {
		return err
	}
	for _, sr := range runs {
		if sr.Status != StatusWaiting && sr.Status != StatusRunning {
			continue
		}
		r, err := c.resumeRun(ctx, &sr)
		if err != nil {
			c.deps.Log.Error("cannot resume run", "run", sr.ID, "err", err)
			c.deps.Store.SetRunStatus(ctx, sr.ID, StatusFailed, "resume failed: "+err.Error())
			continue
		}
		c.deps.Log.Info("resumed run", "run", r.id, "model_version", r.version, "round", r.roundNo)
		c.start(r)
	}
	return nil
}

func (c *Coordinator) start(r *Run) {
	c.mu.Lock()
	c.runs[r.id] = r
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r.loop(c.ctx)
	}()
}

// Close stops every run's loop (runs stay resumable in the store) and waits
// for them.
func (c *Coordinator) Close() {
	c.cancel()
	c.wg.Wait()
}
