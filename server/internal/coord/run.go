package coord

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

// Run statuses (runs.status).
const (
	StatusWaiting  = "waiting"  // created, no round yet
	StatusRunning  = "running"  // at least one round started
	StatusFinished = "finished" // all rounds aggregated
	StatusStopped  = "stopped"  // stopped by the host
	StatusFailed   = "failed"   // could not continue
)

// Run is one federated training run. Its exported methods are safe for
// concurrent use; its state is owned by its loop goroutine.
type Run struct {
	c       *Coordinator
	id      string
	token   string
	cfg     Config
	created time.Time

	train, test *data.Set
	evalSet     *data.Set
	parts       [][]int
	maxSamples  int
	shapes      [][]int
	numParams   int
	modelName   string
	evalModel   *nn.Model // structure for evaluation; Params swapped per round
	strategy    fl.Strategy
	limits      wire.Limits
	upPipe      wire.Pipeline
	downPipe    wire.Pipeline

	events chan any
	done   chan struct{}
	cur    atomic.Pointer[roundRef] // the open round, for sessions decoding updates
	view   atomic.Pointer[RunView]
	slices sync.Map  // client id → slice index, for the slice handler
	deltas sync.Pool // *[]float32 decode buffers of the model's size

	// Owned by the loop goroutine.
	status  string
	version int64     // version of global
	global  []float32 // never modified in place
	roundNo int       // last round opened
	clients map[string]*client
	recent  map[int64][]float32 // recent global versions, the bases of downlink deltas
	bySlice []string            // slice index → client id ("" = free)
	open    *openRound
	lastAcc float64
	failed  int // rounds in a row that produced no model
}

// roundRef is what a session needs to check and decode an update.
type roundRef struct {
	round   int
	version int64
	global  []float32 // read-only
}

// client is a participant the run knows, connected or not.
type client struct {
	id        string
	slice     int
	kind      string
	device    wire.Device
	peer      *peer // nil while disconnected
	firstSeen time.Time
	lastSeen  time.Time
	speed     float64 // last samples/s
	version   int64   // global version the client holds (0 = none or unknown)
	progress  *wire.Progress
	updates   int
	accepted  int
	bytesUp   int64
	bytesDown int64
}

func newID(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return prefix + "-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func newToken() string { return rand.Text()[:20] }

// newRun builds a run's in-memory state from its configuration: data,
// partition, model structure, strategy, codecs.
func (c *Coordinator) newRun(ctx context.Context, cfg Config, id, token string) (*Run, error) {
	train, test, err := c.deps.Data(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	parts, err := data.Partition(train.Labels, train.Classes, cfg.Clients, cfg.Partition, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("coord: partitioning %s: %w", cfg.Dataset, err)
	}
	m, err := nn.New(cfg.Model, nn.Shape{H: train.H, W: train.W, C: train.C}, train.Classes, cfg.Seed)
	if err != nil {
		return nil, err
	}
	strategy, err := cfg.NewStrategy()
	if err != nil {
		return nil, fmt.Errorf("coord: strategy: %w", err)
	}
	up, _ := wire.ParsePipeline(cfg.Codec)
	down, _ := wire.ParsePipeline(cfg.DownCodec)
	r := &Run{
		c: c, id: id, token: token, cfg: cfg, created: c.deps.Now(),
		train: train, test: test, evalSet: test, parts: parts,
		shapes: m.TensorShapes(), numParams: m.NumParams(), modelName: m.Name,
		evalModel: m, strategy: strategy, upPipe: up, downPipe: down,
		events: make(chan any, 256), done: make(chan struct{}),
		status: StatusWaiting, clients: map[string]*client{},
		bySlice: make([]string, len(parts)),
	}
	if cfg.EvalLimit > 0 && cfg.EvalLimit < test.Len() {
		idx := make([]int, cfg.EvalLimit)
		for i := range idx {
			idx[i] = i
		}
		r.evalSet = test.Subset(idx)
	}
	for _, p := range parts {
		r.maxSamples = max(r.maxSamples, len(p))
	}
	r.setGlobal(0, m.Params)
	// An update frame can hold at most 4 bytes a parameter plus headers and
	// per-row scales; anything larger is refused before it is read.
	r.limits = wire.Limits{MaxParams: r.numParams, MaxFrameBytes: 5*r.numParams + 1<<20}
	r.publishView()
	return r, nil
}

// create stores a new run and its initial model (version 0).
func (r *Run) create(ctx context.Context) error {
	cfgJSON, err := json.Marshal(r.cfg)
	if err != nil {
		return err
	}
	st := r.c.deps.Store
	if err := st.CreateRun(ctx, &store.Run{ID: r.id, Name: r.cfg.Name, Config: cfgJSON, JoinToken: r.token,
		Status: StatusWaiting, CreatedAt: r.created}); err != nil {
		return err
	}
	loss, acc, err := r.evaluate(r.global)
	if err != nil {
		return err
	}
	r.lastAcc = acc
	return st.SaveModel(ctx, &store.Model{RunID: r.id, Version: 0, Round: 0, CreatedAt: r.created, Params: r.numParams,
		Codec: "float32", Weights: store.EncodeFloat32s(nil, r.global), TestAccuracy: acc, TestLoss: loss})
}

// evaluate measures weights w on the run's evaluation set.
func (r *Run) evaluate(w []float32) (loss, acc float64, err error) {
	m := *r.evalModel // shares the immutable structure
	m.Params = w
	return nn.Evaluate(&m, r.evalSet, r.c.deps.EvalWorkers)
}

// ID returns the run's id.
func (r *Run) ID() string { return r.id }

// Token returns the run's join token.
func (r *Run) Token() string { return r.token }

// Config returns the run's configuration.
func (r *Run) Config() Config { return r.cfg }

// Done is closed when the run's loop has ended (finished, stopped, failed,
// or the coordinator closed).
func (r *Run) Done() <-chan struct{} { return r.done }

// post hands an event to the loop; it fails once the loop has ended.
func (r *Run) post(ctx context.Context, ev any) error {
	select {
	case r.events <- ev:
		return nil
	case <-r.done:
		return fmt.Errorf("coord: run %s is not running", r.id)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the run (status stopped) and tells its clients.
func (r *Run) Stop(ctx context.Context, reason string) error {
	reply := make(chan error, 1)
	if err := r.post(ctx, evStop{reason: reason, reply: reply}); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sliceIndex returns the slice assigned to client id.
func (r *Run) sliceIndex(id string) (int, bool) {
	v, ok := r.slices.Load(id)
	if !ok {
		return 0, false
	}
	return v.(int), true
}

// Slice returns client id's data slice.
func (r *Run) Slice(id string) (*data.Set, error) {
	i, ok := r.sliceIndex(id)
	if !ok {
		return nil, fmt.Errorf("coord: client %q has no slice in run %s", id, r.id)
	}
	return r.train.Subset(r.parts[i]), nil
}

// recentVersions is how many global versions are kept in memory as bases of
// downlink deltas; a client holding an older one gets the full model.
const recentVersions = 8

// setGlobal makes w (never modified afterwards) version v of the model.
func (r *Run) setGlobal(v int64, w []float32) {
	r.version, r.global = v, w
	if r.recent == nil {
		r.recent = map[int64][]float32{}
	}
	r.recent[v] = w
	delete(r.recent, v-recentVersions)
}
