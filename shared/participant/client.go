package participant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/qflare/qflare/shared/adversary"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/profile"
	"github.com/qflare/qflare/shared/secagg"
	"github.com/qflare/qflare/shared/wire"
)

// ErrRunEnded is returned by Session when the server announces the run's end.
var ErrRunEnded = errors.New("participant: run ended")

// errDropped is returned by Session when Options.DropProb made it drop the
// connection on purpose.
var errDropped = errors.New("participant: connection dropped on purpose (flaky-device emulation)")

// RefusedError reports that the server would not let the client join, with
// its reason; reconnecting will not help.
type RefusedError struct{ Code, Reason string }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("participant: server refused to join (%s): %s", e.Code, e.Reason)
}

// Options configures a Client.
type Options struct {
	Run, Token string
	// ClientID is the id from an earlier Welcome (kept in localStorage by a
	// tab); empty on the first join. Secret is the secret that came with
	// it: a hello that claims an id must show it.
	ClientID, Secret string
	Device           wire.Device
	// Fetch downloads the client's data slice that Welcome describes.
	Fetch func(ctx context.Context, w *wire.Welcome) (*data.Set, error)
	// Data, when set, is trained on instead of a fetched slice: the person's
	// own data. It never leaves the client.
	Data *data.Set
	// NewTrainer builds the round trainer (default: LocalTrainer).
	NewTrainer func(m *nn.Model, set *data.Set) (Trainer, error)
	// Attack, when set, makes this client a malicious one for robustness
	// studies: it transforms the trained update (sign-flip, gaussian,
	// scale:K) or the labels (label-flip). See adversary.Parse.
	Attack adversary.Attack
	// Slowdown ≥ 1 makes training take that many times longer (sleeping
	// after each batch), to emulate slow devices. A Profile overrides it.
	Slowdown float64
	// DropProb is the chance, per round, of dropping the connection in the
	// middle of training, to emulate flaky devices. A Profile's DropProb
	// replaces it.
	DropProb float64
	// Profile, when set, makes the client take as long as that device for
	// each round: it waits out the download, compute and upload times the
	// profile gives (see pace.go), and drops rounds with the profile's
	// DropProb at a random point of the compute time. Its name goes to the
	// server in hello.device.profile.
	Profile *profile.Profile
	// Clock is the time the profile's waits are measured and spent on
	// (default: real time). A simulation on a virtual clock passes it
	// here; when it also counts work in flight (link.Tracker), the client
	// holds a unit while it works and gives it up while it waits, and
	// Session expects its caller to hold one unit (it returns with one
	// held).
	Clock Clock
	// Seed drives the emulated drops.
	Seed uint64
	// ProgressEvery is how often progress goes to the server (default 1s).
	ProgressEvery time.Duration
	// Yield, when set, is called between batches of the work the client
	// does itself outside Trainer.Train (checking the trained model), so a
	// single-threaded host can let its event loop run.
	Yield func()
	// Events, when set, receives every Event synchronously.
	Events func(Event)
	// Log receives diagnostics (default: discarded).
	Log *slog.Logger
	// IdentitySeed is the seed of the client's long-term identity key
	// (secure aggregation signs each round's keys with it), kept by a tab
	// beside its id. Empty: a new identity is made at the first secure
	// round and announced with an EventIdentity.
	IdentitySeed []byte
}

// Client is one participant. See the package documentation.
type Client struct {
	opt    Options
	id     string
	secret string

	welcome   *wire.Welcome
	joined    bool // this session's hello was answered with a welcome
	set       *data.Set
	shapes    [][]int // the model's tensor shapes
	modelName string
	trainer   Trainer
	guard     *guard // checks that training did not make the model worse
	enc       *wire.Encoder
	// Between rounds a client keeps only what the next round needs: the
	// global model as last received when the run sends model deltas (their
	// base), and the encoder (its error feedback). The other buffers come
	// from a pool for the round and go back after it, so a simulation's
	// thousand idle clients do not hold a thousand models.
	global  []float32 // the global model as last received (nil between rounds without deltas)
	local   []float32 // the trained model (round only)
	version int64     // version of global, 0 before the first model
	rng     *rand.Rand

	flopsPerSample float64       // the model's training FLOPs per sample (emulation)
	emulated       time.Duration // the emulated device's compute time of the round

	items      <-chan item   // the current session's messages
	readerDone chan struct{} // closed when the session's reader has stopped
	// Virtual-clock bookkeeping (vtime.go): track is nil on real time.
	track link.Tracker
	held  int // units the session's goroutine holds
	vmu   sync.Mutex
	// asleep: the session's goroutine waits on the clock; queued is how
	// many units the messages queued for it hold.
	asleep bool
	queued int

	// Secure aggregation (secure.go): the identity that signs round keys,
	// the identity keys seen first for other client ids, and whether this
	// round's emulated drop happens during training.
	identity     *secagg.Identity
	pins         map[string][]byte
	dropTraining bool

	// Cancelling training: read numbers each round_start it reads (starts,
	// counted across sessions). The server ending that round, the run ending
	// or the connection failing cancels every start up to it (cancelled),
	// whether its training is running (trainSeq) or has not begun.
	mu          sync.Mutex
	starts      uint64
	startRound  int // round of the latest round_start read
	cancelled   uint64
	trainSeq    uint64
	trainCancel context.CancelFunc
}

// New returns a client with the given options.
func New(opt Options) *Client {
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.NewTrainer == nil {
		opt.NewTrainer = func(m *nn.Model, set *data.Set) (Trainer, error) { return NewLocalTrainer(m, set), nil }
	}
	c := &Client{opt: opt, id: opt.ClientID, secret: opt.Secret, rng: rand.New(rand.NewPCG(opt.Seed, 0xda3e39cb94b95bdb))}
	c.track, _ = opt.Clock.(link.Tracker)
	return c
}

// ID returns the client id the server gave (empty before the first welcome).
func (c *Client) ID() string { return c.id }

// Secret returns the secret that proves ID (empty before the first welcome).
func (c *Client) Secret() string { return c.secret }

// Set returns the data the client trains on (nil before it is fetched).
func (c *Client) Set() *data.Set { return c.set }

func (c *Client) emit(e Event) {
	if c.opt.Events != nil {
		c.opt.Events(e)
	}
}

func (c *Client) state(s string, round int) { c.emit(Event{Type: EventState, State: s, Round: round}) }

// item is one message from the reader goroutine.
type item struct {
	msg   wire.Message // nil for a binary frame
	frame []byte
	err   error
	seq   uint64 // a round_start's number (see Client.starts)
	size  int    // a secure aggregation message's frame size
}

// Session runs one connection: it says hello, then follows the server until
// the connection closes, the run ends (ErrRunEnded), the server refuses the
// client (*RefusedError) or ctx is done. It closes conn before returning.
func (c *Client) Session(ctx context.Context, conn link.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The reader calls Done when it stops; this one covers a session that
	// ends before its reader starts (a tracked pipe holds the clock for
	// each end's reader until then).
	defer link.Done(conn)
	defer conn.Close()
	if c.track != nil {
		c.held = 1 // the caller's
		defer c.settle(cancel, conn)
	}
	c.state(StateConnecting, 0)
	c.joined = false
	dev := c.opt.Device
	if c.opt.Profile != nil {
		dev.Profile = c.opt.Profile.Name
	}
	hello := &wire.Hello{V: wire.Version, ClientID: c.id, Secret: c.secret, Run: c.opt.Run, Token: c.opt.Token,
		Device: dev, Codecs: []string{"float32+zstd"}, ResumeVersion: c.version}
	if err := c.sendMsg(ctx, conn, hello); err != nil {
		return err
	}
	items := make(chan item, 64)
	c.items = items
	c.readerDone = make(chan struct{})
	go c.read(ctx, conn, items)
	for {
		it, err := c.next(ctx)
		if err != nil {
			c.state(StateOffline, 0)
			return err
		}
		if err := c.handle(ctx, conn, it); err != nil {
			return err
		}
	}
}

// next returns the session's next message, or the connection's error.
func (c *Client) next(ctx context.Context) (item, error) {
	if c.track != nil {
		return c.nextTracked(ctx)
	}
	select {
	case it := <-c.items:
		return it, it.err
	case <-ctx.Done():
		return item{}, ctx.Err()
	}
}

// read forwards conn's messages to items, parsed, and cancels a training run
// that the server has ended. It returns after the first error.
func (c *Client) read(ctx context.Context, conn link.Conn, items chan<- item) {
	defer close(c.readerDone)
	defer link.Done(conn)
	// On a virtual clock a message is work to do now (a unit held for it,
	// before anything that may wake the session's goroutine), unless the
	// session's goroutine is asleep and the message does not wake it (see
	// vtime.go).
	push := func(it item, wakes bool) bool {
		if c.track != nil {
			return c.pushTracked(ctx, items, it, wakes)
		}
		select {
		case items <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		m, err := conn.Recv(ctx)
		if err != nil {
			c.holdFor(true)
			c.cancelTraining(-1)
			push(item{err: err}, true)
			return
		}
		if m.Binary && wire.IsSecAgg(m.Data) { // a secure round's message (secure.go)
			msg, err := wire.ParseSecAgg(m.Data, wire.SecAggLimits{})
			if err != nil {
				msg, err = nil, fmt.Errorf("participant: bad secure aggregation message from server: %w", err)
			}
			select {
			case items <- item{msg: msg, err: err, size: len(m.Data)}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				c.cancelTraining(-1)
				return
			}
			continue
		}
		if m.Binary {
			c.holdFor(false)
			if !push(item{frame: m.Data}, false) {
				return
			}
			continue
		}
		msg, err := wire.ParseMessage(m.Data, wire.MaxMessageBytes)
		if err != nil {
			c.holdFor(true)
			c.cancelTraining(-1)
			push(item{err: fmt.Errorf("participant: bad message from server: %w", err)}, true)
			return
		}
		var seq uint64
		wakes := false
		switch msg := msg.(type) {
		case *wire.RoundEnd:
			wakes = !msg.Async // an async step ends no task
		case *wire.RunEnd, *wire.Bye:
			wakes = true
		}
		c.holdFor(wakes)
		switch msg := msg.(type) {
		case *wire.RoundStart:
			c.mu.Lock()
			c.starts++
			seq, c.startRound = c.starts, msg.Round
			c.mu.Unlock()
		case *wire.RoundEnd:
			if wakes {
				c.cancelTraining(msg.Round)
			}
		case *wire.RunEnd, *wire.Bye:
			c.cancelTraining(-1)
		}
		if !push(item{msg: msg, seq: seq}, wakes) {
			return
		}
	}
}

// cancelTraining stops the training of round (any round if round < 0),
// running or yet to start: a round_end or run_end read while the client
// still decodes the model must not let it train the whole round for nothing.
func (c *Client) cancelTraining(round int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if round >= 0 && round != c.startRound {
		return // an older round, long over
	}
	c.cancelled = c.starts
	if c.trainCancel != nil && c.trainSeq <= c.cancelled {
		c.trainCancel()
	}
}

func (c *Client) handle(ctx context.Context, conn link.Conn, it item) error {
	if it.msg == nil {
		return fmt.Errorf("participant: binary frame without a round_start")
	}
	switch m := it.msg.(type) {
	case *wire.Welcome:
		c.joined = true
		return c.join(ctx, m)
	case *wire.Rejected:
		// A rejection of this session's hello (the run is over or full, a
		// wrong token) ends the session even for a client that joined in an
		// earlier one: reconnecting would only be refused again.
		if !c.joined || m.Code == wire.CodeAuth {
			return &RefusedError{Code: m.Code, Reason: m.Reason}
		}
		c.emit(Event{Type: EventRejected, Round: m.Round, Message: m.Reason, Code: m.Code})
	case *wire.Wait:
		c.state(StateWaiting, m.Round)
		c.emit(Event{Type: EventWait, Round: m.Round, Message: m.Reason})
	case *wire.RoundStart:
		if c.welcome == nil {
			return fmt.Errorf("participant: round_start before welcome")
		}
		return c.round(ctx, conn, m, it.seq)
	case *wire.Accepted:
		c.emit(Event{Type: EventAccepted, Round: m.Round, Bytes: m.Bytes, Staleness: m.Staleness})
		c.state(StateWaiting, m.Round)
	case *wire.RoundEnd:
		c.emit(Event{Type: EventRoundEnd, Round: m.Round, TestAccuracy: m.TestAccuracy, TestLoss: m.TestLoss, ModelVersion: m.ModelVersion})
	case *wire.RunEnd:
		c.state(StateDone, 0)
		c.emit(Event{Type: EventRunEnd, Message: m.Reason, TestAccuracy: m.FinalAccuracy})
		return ErrRunEnded
	case *wire.Bye:
		return fmt.Errorf("participant: server closed the connection: %s", m.Reason)
	case wire.SecAggMessage:
		// A secure round this client is no longer in (it declined, or the
		// round ended while the message was on its way).
		c.opt.Log.Debug("ignoring a secure aggregation message outside its round", "type", m.Type(), "round", m.RoundNo())
	default:
		return fmt.Errorf("participant: unexpected %s message from server", m.Type())
	}
	return nil
}

func (c *Client) sendMsg(ctx context.Context, conn link.Conn, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Send(ctx, link.Message{Data: b})
}
