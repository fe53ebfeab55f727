package coord

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/qflare/qflare/shared/link"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

// Errors callers branch on.
var (
	// ErrUnknownRun is returned for a run id the coordinator does not run
	// (it may be a finished run, in the store).
	ErrUnknownRun = errors.New("coord: unknown run")
	// ErrAuth is returned by Serve for a hello with a wrong join token or
	// for a run that does not exist: the caller may count it against the
	// remote address (token guessing).
	ErrAuth = errors.New("coord: not authorised")
)

// Deps are what a Coordinator needs from the outside.
type Deps struct {
	Store *store.Store
	// Data returns a dataset by name ("mnist", "cifar10"), cached.
	Data func(name string) (train, test *data.Set, err error)
	Log  *slog.Logger
	// Clock is the time source (default: the system clock).
	Clock Clock
	// EvalWorkers is the number of goroutines evaluating a model (default
	// GOMAXPROCS).
	EvalWorkers int
	// SliceURL returns the URL a client fetches its slice from, given the
	// run and client ids (default "/api/runs/RUN/slice?client=ID").
	SliceURL func(run, client string) string
	// Observer is told what the engine does, for metrics (default: no one).
	Observer Observer
}

// Coordinator runs federated-learning runs: the live ones, in memory; a
// run that has ended leaves memory and is served from the store. Safe for
// concurrent use.
type Coordinator struct {
	deps      Deps
	decodeSem chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	lifecycle *hub // run_created and run_status of every run
	// track counts work in flight when the clock is virtual (see
	// link.Tracker); a no-op on the real clock.
	track link.Tracker

	mu   sync.Mutex
	runs map[string]*Run
}

// New returns a coordinator. Call Resume to restart stored runs, and Close
// to stop.
func New(deps Deps) *Coordinator {
	if deps.Store == nil || deps.Data == nil {
		panic("coord: Deps.Store and Deps.Data are required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = realClock{}
	}
	if deps.Observer == nil {
		deps.Observer = nopObserver{}
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
	var track link.Tracker = noTrack{}
	if t, ok := deps.Clock.(link.Tracker); ok {
		track = t
	}
	return &Coordinator{deps: deps, ctx: ctx, cancel: cancel, runs: map[string]*Run{}, lifecycle: newHub(),
		decodeSem: make(chan struct{}, runtime.GOMAXPROCS(0)), track: track}
}

// Store returns the store.
func (c *Coordinator) Store() *store.Store { return c.deps.Store }

// Subscribe returns a subscription to every run's lifecycle events
// (EvRunCreated, EvRunStatus); each run's other events come from
// Run.Subscribe.
func (c *Coordinator) Subscribe(buffer int) *Subscription { return c.lifecycle.subscribe(buffer) }

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

func newID(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return prefix + "-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func newToken() string { return rand.Text()[:20] }

// decodeBuffers is how many updates of one run may be decoded or wait,
// decoded, for the loop's verdict and the fold at once: enough to keep every
// core decoding while others wait.
func decodeBuffers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// newRun builds a run around its spec and the given global model.
func (c *Coordinator) newRun(sp *spec) *Run {
	r := &Run{c: c, sp: sp, policy: newPolicy(&sp.cfg), models: newModels(sp), hub: newHub(),
		deltas: newBufList(decodeBuffers(), sp.numParams),
		done:   make(chan struct{}), mbWake: make(chan struct{}, 1),
		st: &state{status: StatusWaiting, clients: map[string]*client{}, bySlice: make([]string, len(sp.parts))}}
	if sp.cfg.Async() {
		r.staleness, _ = ParseStaleness(sp.cfg.Staleness) // Normalize checked it
	}
	return r
}

// CreateRun validates cfg, stores a new run with its initial model and
// starts it. It returns the run (its join token is in Run.Token). Bad
// configurations give errors that wrap ErrBadConfig.
func (c *Coordinator) CreateRun(ctx context.Context, cfg Config) (*Run, error) {
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	now := c.deps.Clock.Now()
	sp, init, err := newSpec(cfg, newID("run"), newToken(), now, &c.deps)
	if err != nil {
		return nil, err
	}
	r := c.newRun(sp)
	loss, acc, err := sp.evaluate(ctx, init)
	if err != nil {
		return nil, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	err = c.deps.Store.Do(ctx, "create_run", func(t *store.Tx) error {
		if err := t.CreateRun(&store.Run{ID: sp.id, Name: cfg.Name, Config: cfgJSON, JoinToken: sp.token,
			Status: StatusWaiting, CreatedAt: now}); err != nil {
			return err
		}
		return t.SaveModel(&store.Model{RunID: sp.id, Version: 0, Round: 0, CreatedAt: now, Params: sp.numParams,
			Codec: store.CodecFloat32, Weights: store.EncodeFloat32s(nil, init), TestAccuracy: acc, TestLoss: loss})
	})
	if err != nil {
		return nil, err
	}
	r.st.current = r.models.add(0, init)
	r.st.lastAcc = acc
	c.start(r)
	v := r.View()
	c.lifecycle.publish(Event{Type: EvRunCreated, Run: sp.id, Time: now, Status: &v})
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
		c.deps.Log.Info("resumed run", "run", r.sp.id, "model_version", r.st.current.v, "round", r.st.roundNo)
		c.start(r)
	}
	return nil
}

// start runs r's loop; the run leaves the coordinator when it ends.
func (c *Coordinator) start(r *Run) {
	r.publishView()
	c.mu.Lock()
	c.runs[r.sp.id] = r
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r.loop(c.ctx)
		c.mu.Lock()
		delete(c.runs, r.sp.id)
		c.mu.Unlock()
	}()
}

// Close stops every run's loop (runs stay resumable in the store), waits
// for them and for the writes they queued, and ends the lifecycle stream.
func (c *Coordinator) Close() {
	c.cancel()
	c.wg.Wait()
	// The loops queue some writes without waiting for them (a client's
	// row at its join, telemetry at the end): the writer runs jobs in
	// order, so once an empty one is through, they are durable too, and a
	// coordinator started next on the same store resumes from them.
	if err := c.deps.Store.Do(context.Background(), "close", func(*store.Tx) error { return nil }); err != nil && !errors.Is(err, store.ErrClosed) {
		c.deps.Log.Error("waiting for the runs' last writes", "err", err)
	}
	c.lifecycle.close(Event{Type: EvEnd, Time: c.deps.Clock.Now()})
}

// now reads the coordinator's clock.
func (c *Coordinator) now() time.Time { return c.deps.Clock.Now() }
