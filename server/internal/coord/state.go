package coord

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"sync/atomic"
	"time"

	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/wire"
)

// state is what a run's loop goroutine owns: status, the global model,
// the clients and the open round. Nothing else reads or writes it.
type state struct {
	status  string
	current *version // the global model
	roundNo int      // last round opened
	round   *round   // the open round
	closing *round   // the round being aggregated and committed, off the loop
	clients map[string]*client
	bySlice []string // slice index → client id ("" = free)
	// freeFrom is the lowest slice index that may be free: slices below it
	// are taken.
	freeFrom int
	online   int // connected clients
	lastAcc  float64
	failed   int // rounds in a row that produced no model
	// busy counts the clients holding a task (async: the training slots in
	// use).
	busy int
	// parked are updates that arrived while an async step was closing:
	// they join the next step's buffer when it opens.
	parked []evUpdate
}

// active reports whether the run still trains (waiting or running).
func (st *state) active() bool { return st.status == StatusWaiting || st.status == StatusRunning }

// client is a participant the run knows, connected or not.
type client struct {
	id         string
	secretHash []byte
	slice      int
	kind       string
	device     wire.Device
	peer       *peer // nil while disconnected
	firstSeen  time.Time
	lastSeen   time.Time
	speed      float64 // last samples/s
	version    int64   // global version the client holds (0 = none or unknown)
	progress   *wire.Progress
	updates    int
	accepted   int
	bytesUp    int64
	bytesDown  int64
	down       atomic.Int64 // model bytes sent and not yet added to bytesDown
	missed     int          // rounds in a row selected for and not answered
	// refusedRows counts the refused updates stored for refusedRound.
	refusedRound, refusedRows int
	skipUntil                 int  // passed over up to this round
	dirty                     bool // telemetry changed since it was last written
	profile                   string
	samples                   int // its slice's size
	// task is the work it holds (nil: none); last is the last task it got,
	// kept after it is over so that a late update still shows how long
	// the client takes.
	task, last *inflight
	// storing: its accepted update is being stored; it gets no new task
	// before it hears "accepted".
	storing bool
	// secsPerSample is the measured time its last task took, from the
	// task's start to its update's arrival, per sample trained (0: never
	// measured). Selection reads it.
	secsPerSample float64
	lastLoss      float64 // training loss its last accepted update reported
	lastRound     int     // the last round one of its updates was accepted in
}

// inflight is a task a client holds: the round it was given in, the model
// version it trains, when it was sent and when it expires (zero: never).
type inflight struct {
	round    int
	version  int64
	sent     time.Time
	deadline time.Time
	down     atomic.Int64 // model bytes sent for it
}

// secretOK reports whether secret is the client's (in constant time).
func (cl *client) secretOK(secret string) bool {
	if len(cl.secretHash) == 0 || secret == "" {
		return false
	}
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], cl.secretHash) == 1
}

// stats returns the client's telemetry for the store, counting the model
// bytes its connections sent since the last call.
func (cl *client) stats() store.ClientStats {
	cl.bytesDown += cl.down.Swap(0)
	return store.ClientStats{ID: cl.id, LastSeen: cl.lastSeen, Updates: cl.updates, Accepted: cl.accepted,
		BytesUp: cl.bytesUp, BytesDown: cl.bytesDown, SamplesPerS: cl.speed}
}

// connected returns the ids of connected clients in slice order, so that
// seeded selection does not depend on map order.
func (st *state) connected() []string {
	ids := make([]string, 0, st.online)
	for _, id := range st.bySlice {
		if id != "" && st.clients[id].peer != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// inSliceOrder sorts ids by their clients' slices.
func (st *state) inSliceOrder(ids []string) {
	slices.SortFunc(ids, func(a, b string) int { return st.clients[a].slice - st.clients[b].slice })
}

// dirtyStats returns the telemetry of the clients that changed and marks
// them clean.
func (st *state) dirtyStats() []store.ClientStats {
	var list []store.ClientStats
	for _, cl := range st.clients {
		if cl.dirty || cl.down.Load() != 0 {
			list = append(list, cl.stats())
			cl.dirty = false
		}
	}
	return list
}

// freeSlice returns a slice for a newcomer: a free one, or else the slice
// of the client that has been away longest, once it has been away longer
// than grace (that client is released: it rejoins, if ever, as a new
// client). ok is false when every slice is held; wait is then how long
// until the next one frees.
func (st *state) freeSlice(now time.Time, grace time.Duration) (slice int, released *client, wait time.Duration, ok bool) {
	for i := st.freeFrom; i < len(st.bySlice); i++ {
		if st.bySlice[i] == "" {
			st.freeFrom = i + 1
			return i, nil, 0, true
		}
	}
	st.freeFrom = len(st.bySlice)
	var oldest *client
	for _, id := range st.bySlice {
		if cl := st.clients[id]; cl.peer == nil && (oldest == nil || cl.lastSeen.Before(oldest.lastSeen)) {
			oldest = cl
		}
	}
	if oldest == nil {
		return 0, nil, 0, false
	}
	if away := now.Sub(oldest.lastSeen); away < grace {
		return 0, nil, grace - away, false
	}
	return oldest.slice, oldest, 0, true
}
