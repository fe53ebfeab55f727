package coord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

// Run statuses (runs.status): the store's vocabulary.
const (
	StatusWaiting  = store.RunWaiting  // created, no round yet
	StatusRunning  = store.RunRunning  // at least one round started
	StatusFinished = store.RunFinished // all rounds aggregated
	StatusStopped  = store.RunStopped  // stopped by the host
	StatusFailed   = store.RunFailed   // could not continue
)

// ErrNotRunning is returned by a run's methods once its loop has ended
// (finished, stopped, failed, or the coordinator closed).
var ErrNotRunning = errors.New("coord: run is not running")

// Run is one live federated training run. Its exported methods are safe for
// concurrent use. A Run's spec (configuration, data, model structure) never
// changes; everything else is owned by its loop goroutine, which the
// methods talk to through its mailbox.
type Run struct {
	c      *Coordinator
	sp     *spec
	policy Policy
	// staleness weighs async updates by how stale they are.
	staleness Staleness
	models    *models
	hub       *hub
	done      chan struct{}
	view      atomic.Pointer[RunView]
	slices    sync.Map  // client id → slice index, for the slice handler
	deltas    *bufList  // decode buffers of the model's size
	st        *state    // the loop's
	edge      edgeState // edge shards' part of the run (shard.go, shard_round.go)
	// closers counts the goroutines aggregating a round off the loop; the
	// loop waits for them before it ends.
	closers sync.WaitGroup

	mbMu     sync.Mutex
	mailbox  []event
	mbWake   chan struct{}
	mbClosed bool
}

// event is something for the loop to handle (see loop.go).
type event interface{ isEvent() }

// post hands ev to the loop. It never blocks; it fails with ErrNotRunning
// once the loop has ended, so no caller can wait on a reply that will not
// come.
func (r *Run) post(ev event) error {
	r.mbMu.Lock()
	if r.mbClosed {
		r.mbMu.Unlock()
		return fmt.Errorf("%w: run %s", ErrNotRunning, r.sp.id)
	}
	r.mailbox = append(r.mailbox, ev)
	r.c.track.Hold() // until the loop has handled it
	r.mbMu.Unlock()
	select {
	case r.mbWake <- struct{}{}:
	default:
	}
	return nil
}

// take waits for the loop's next events; done is how many events the loop
// finished handling since the last take.
func (r *Run) take(ctx context.Context, done int) []event {
	for range done {
		r.c.track.Release()
	}
	for {
		r.mbMu.Lock()
		evs := r.mailbox
		r.mailbox = nil
		r.mbMu.Unlock()
		if len(evs) > 0 {
			return evs
		}
		select {
		case <-r.mbWake:
		case <-ctx.Done():
			return nil
		}
	}
}

// closeMailbox refuses further events.
func (r *Run) closeMailbox() {
	r.mbMu.Lock()
	r.mbClosed = true
	for range r.mailbox {
		r.c.track.Release()
	}
	r.mailbox = nil
	r.mbMu.Unlock()
}

// ask posts a request built around a reply channel and waits for the
// answer, the loop's end, or ctx.
func ask[T any](ctx context.Context, r *Run, mk func(chan T) event) (T, error) {
	var zero T
	reply := make(chan T, 1)
	if err := r.post(mk(reply)); err != nil {
		return zero, err
	}
	select {
	case v := <-reply:
		return v, nil
	case <-r.done:
		select { // answered just before the loop ended
		case v := <-reply:
			return v, nil
		default:
			return zero, fmt.Errorf("%w: run %s", ErrNotRunning, r.sp.id)
		}
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// ID returns the run's id.
func (r *Run) ID() string { return r.sp.id }

// Token returns the run's join token.
func (r *Run) Token() string { return r.sp.token }

// Config returns the run's configuration.
func (r *Run) Config() Config { return r.sp.cfg }

// Done is closed when the run's loop has ended (finished, stopped, failed,
// or the coordinator closed).
func (r *Run) Done() <-chan struct{} { return r.done }

// View returns the run's live state as of its last event, without the
// client list (see Snapshot).
func (r *Run) View() RunView { return *r.view.Load() }

// Snapshot returns the run's live state with every client's.
func (r *Run) Snapshot(ctx context.Context) (RunView, error) {
	return ask(ctx, r, func(c chan RunView) event { return evSnapshot{reply: c} })
}

// Subscribe returns a subscription to the run's events (see Subscription);
// buffer sizes its channel. On a run that has ended, the channel is closed
// at once.
func (r *Run) Subscribe(buffer int) *Subscription { return r.hub.subscribe(buffer) }

// Stop ends the run (status stopped) and tells its clients; it answers
// with ErrNotRunning at once for a run that is already over.
func (r *Run) Stop(ctx context.Context, reason string) error {
	err, aerr := ask(ctx, r, func(c chan error) event { return evStop{reason: reason, reply: c} })
	if aerr != nil {
		return aerr
	}
	return err
}

// SliceLabels returns the label counts of each data slice, by slice index.
func (r *Run) SliceLabels() [][]int { return r.sp.labels }

// Slice returns client id's data slice.
func (r *Run) Slice(id string) (*data.Set, error) {
	v, ok := r.slices.Load(id)
	if !ok {
		return nil, fmt.Errorf("coord: client %q has no slice in run %s", id, r.sp.id)
	}
	return r.sp.sliceSet(v.(int)), nil
}

// bufList is a bounded free list of the model-size buffers updates are
// decoded into. A buffer is taken before an update is decoded and given
// back once the update is folded (or refused), so the list bounds how many
// decoded updates wait for the loop and the fold at once, and the memory
// they hold. Unlike a sync.Pool it keeps its buffers across garbage
// collections: an update is decoded into memory that is already mapped and
// likely in cache, not into a fresh allocation whose every page faults in
// on first write.
type bufList struct {
	size  int
	slots chan struct{}   // one per buffer in use
	free  chan *[]float32 // buffers given back
}

// newBufList returns a list of at most n buffers of size floats each,
// allocated on first use.
func newBufList(n, size int) *bufList {
	return &bufList{size: size, slots: make(chan struct{}, n), free: make(chan *[]float32, n)}
}

// get returns a buffer, waiting while all are in use, or ctx's error.
func (l *bufList) get(ctx context.Context) (*[]float32, error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case b := <-l.free:
		return b, nil
	default:
		b := make([]float32, l.size)
		return &b, nil
	}
}

// put gives back a buffer get returned.
func (l *bufList) put(b *[]float32) {
	l.free <- b // never blocks: at most cap(slots) buffers exist
	<-l.slots
}
