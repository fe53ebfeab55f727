// Package shard is an edge shard's logic: the aggregator tier between
// browser tabs and the QFLARE server (the origin). A shard holds its tabs'
// WebSockets; it relays their control messages to the origin over one link
// (package shardwire) and the origin's to them, validates every update a
// tab sends with shared/wire exactly as the origin does (same checks, same
// reject codes), folds the accepted ones into an fl.Partial, tells the
// origin about each update, and sends it one partial per round.
//
// The package is the shard without its runtime: a Host delivers messages,
// a Clock times deadlines. Command server/edge runs it in a Cloudflare
// Durable Object (Go compiled to js/wasm); Conns runs it over link.Conn
// values (tests, and any native host).
//
// # Rounds
//
// The origin selects clients and sends their tasks (round_start, relayed);
// the shard learns a tab's task from it. Before a round's first task the
// origin sends the round (shardwire.Round: its model version, the frame
// that decodes to the exact weights, the deadline and, with DP, the clip
// norm). A round's partial is sent when no tab of the run holds a task for
// it any more, when the origin asks (Flush), or SealLead before the
// deadline; updates that come after that start another partial of the
// same round. A round_end drops what was not sent: the origin has closed
// the round without it, and its clients were told.
//
// # Crash contract
//
// A shard keeps its partials in memory only. A tab hears "accepted" from
// the origin once the partial that holds its update is durable there, not
// before. If the shard dies (evicted, restarted, its isolate killed) or
// its link to the origin breaks, the origin counts its clients' pending
// updates as dropped: their seats go back to waiting, so a tab that
// reconnects before the deadline trains the round again, and nothing a
// tab was told is accepted is ever lost. Losing the link closes every tab
// with code 1012 (service restart), so they reconnect.
//
// # Concurrency
//
// A Shard serialises its methods with a mutex; a Host must not call back
// into the shard from its methods. In a Durable Object everything runs on
// one thread anyway.
package shard

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// Host delivers a shard's messages. Its methods must not block on the
// network: they queue, and report failures through the shard's methods
// (TabClosed, OriginDown).
type Host interface {
	// SendTab sends a message to tab id.
	SendTab(id uint32, m link.Message)
	// SendTabFrame sends model frame f, which the shard keeps unchanged
	// under fid, to tab id as a binary message (a host may convert each
	// frame once for all its tabs).
	SendTabFrame(id, fid uint32, f []byte)
	// CloseTab closes tab id, after what was sent to it, with a WebSocket
	// close code and reason.
	CloseTab(id uint32, code int, reason string)
	// SendOrigin sends a link message, which it must not keep once it
	// returns (copy it to queue it); an error means the link is gone.
	SendOrigin(b []byte) error
}

// Clock is the shard's time source.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Stopper
}

// Stopper cancels a pending AfterFunc.
type Stopper interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Stopper {
	return time.AfterFunc(d, f)
}

// Options configure a shard.
type Options struct {
	// Name names the shard to the origin ([A-Za-z0-9_-], 1..64 bytes).
	Name string
	// Clock is the time source (default: the system clock).
	Clock Clock
	// Log receives what the shard does (default: discarded).
	Log *slog.Logger
	// SealLead is how long before a round's deadline its partial is sent
	// (default DefaultSealLead).
	SealLead time.Duration
}

// DefaultSealLead leaves the partial time to reach the origin, which waits
// a grace period after the deadline for shards' partials.
const DefaultSealLead = 2 * time.Second

// WebSocket close codes the shard uses (RFC 6455 registry).
const (
	CloseNormal      = 1000
	ClosePolicy      = 1008 // a tab broke the protocol
	CloseTooBig      = 1009 // a message beyond the tab's limit
	CloseRestart     = 1012 // the link to the origin broke: reconnect
	CloseTryAgain    = 1013 // not connected to the origin yet: reconnect
	maxHelloBytes    = 16 << 10
	maxPendingHellos = 4 // texts a tab may send before its welcome
)

// Shard is one edge shard. Safe for concurrent use.
type Shard struct {
	h   Host
	opt Options

	mu       sync.Mutex
	linked   bool // the origin welcomed the link
	tabs     map[uint32]*tab
	runs     map[string]*run
	frames   []cachedFrame // the last FrameCache frames, oldest first
	seq      uint32        // partials sent
	enc      shardwire.PartialEncoder
	stats    Stats
	foldTime time.Duration
	sealTime time.Duration
}

// tab is one tab's connection.
type tab struct {
	id       uint32
	remote   string
	texts    int    // text messages before the welcome
	client   string // from the welcome
	run      string
	task     *task // from round_start; nil when it holds none
	lastTask int   // the round of the latest task
	answered int   // the last round it sent an update for
}

// task is a round a tab trains for.
type task struct {
	round   int
	version int64
}

type cachedFrame struct {
	id uint32
	b  []byte
}

// New returns a shard that talks through h.
func New(h Host, opt Options) *Shard {
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.SealLead <= 0 {
		opt.SealLead = DefaultSealLead
	}
	return &Shard{h: h, opt: opt, tabs: map[uint32]*tab{}, runs: map[string]*run{}}
}

// Stats are a shard's counters.
type Stats struct {
	Shard    string  `json:"shard"`
	Linked   bool    `json:"linked"`
	Tabs     int     `json:"tabs"`
	Updates  int64   `json:"updates"`  // update frames received
	Folded   int64   `json:"folded"`   // accepted and folded
	Refused  int64   `json:"refused"`  // refused at the shard
	Partials int64   `json:"partials"` // sent
	BytesIn  int64   `json:"bytes_in"` // update frames from tabs
	BytesUp  int64   `json:"bytes_up"` // sent to the origin
	FoldMS   float64 `json:"fold_ms"`  // time spent validating and folding
	SealMS   float64 `json:"seal_ms"`  // time spent compressing and sending partials
	Open     int     `json:"open_partials"`
	MemoryMB float64 `json:"memory_mb,omitempty"` // filled in by the host
	HeapMB   float64 `json:"heap_mb,omitempty"`   // filled in by the host
	SysMB    float64 `json:"sys_mb,omitempty"`    // filled in by the host
}

// Stats returns the shard's counters.
func (s *Shard) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Shard, st.Linked, st.Tabs = s.opt.Name, s.linked, len(s.tabs)
	st.FoldMS = float64(s.foldTime.Microseconds()) / 1000
	st.SealMS = float64(s.sealTime.Microseconds()) / 1000
	for _, r := range s.runs {
		for _, p := range r.open {
			if p.Count > 0 {
				st.Open++
			}
		}
	}
	return st
}

// sendOrigin sends a link message, counting its bytes.
func (s *Shard) sendOrigin(b []byte) error {
	s.stats.BytesUp += int64(len(b))
	return s.h.SendOrigin(b)
}

// OriginUp starts a link: it sends the shard's hello. Tabs are taken once
// the origin answers.
func (s *Shard) OriginUp() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := shardwire.Encode(nil, shardwire.KindHello, 0, &shardwire.Hello{V: shardwire.Version, Shard: s.opt.Name})
	if err != nil {
		return err
	}
	return s.sendOrigin(b)
}

// OriginDown forgets a link that broke: every tab is closed with 1012 so
// that it reconnects, and what the shard held (runs, partials, frames) is
// dropped; the origin counts the tabs' pending updates as dropped.
func (s *Shard) OriginDown(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opt.Log.Warn("link to the origin lost", "reason", reason, "tabs", len(s.tabs))
	s.linked = false
	for id := range s.tabs {
		s.h.CloseTab(id, CloseRestart, "the edge shard lost its server connection; reconnect")
		delete(s.tabs, id)
	}
	for _, r := range s.runs {
		r.stop()
	}
	clear(s.runs)
	s.frames = nil
}

// OriginMessage handles a message from the origin, which it may keep (a
// model frame): the caller must not reuse b. An error means the origin
// broke the protocol; the host should close the link.
func (s *Shard) OriginMessage(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := shardwire.Parse(b)
	if err != nil {
		return err
	}
	switch m.Kind {
	case shardwire.KindWelcome:
		var w shardwire.Welcome
		if err := shardwire.Decode(m.Body, &w); err != nil {
			return err
		}
		s.linked = true
		s.opt.Log.Info("linked to the origin", "shard", s.opt.Name)
	case shardwire.KindTabText:
		s.fromOrigin(m.ID, m.Body)
	case shardwire.KindTabClose:
		var c shardwire.Close
		if err := shardwire.Decode(m.Body, &c); err != nil {
			return err
		}
		if t := s.tabs[m.ID]; t != nil {
			s.h.CloseTab(m.ID, c.Code, c.Reason)
			s.forget(t)
		}
	case shardwire.KindFrame:
		s.keepFrame(m.ID, m.Body)
	case shardwire.KindTabFrame:
		fid := uint32(0)
		if len(m.Body) == 4 {
			fid = uint32(m.Body[0]) | uint32(m.Body[1])<<8 | uint32(m.Body[2])<<16 | uint32(m.Body[3])<<24
		}
		f := s.frame(fid)
		if f == nil {
			return fmt.Errorf("shard: the origin named frame %d, which the shard does not hold", fid)
		}
		if s.tabs[m.ID] != nil {
			s.h.SendTabFrame(m.ID, fid, f)
		}
	case shardwire.KindRun:
		var ri shardwire.Run
		if err := shardwire.Decode(m.Body, &ri); err != nil {
			return err
		}
		s.setRun(&ri)
	case shardwire.KindRound:
		var rd shardwire.Round
		if err := shardwire.Decode(m.Body, &rd); err != nil {
			return err
		}
		return s.setRound(&rd)
	case shardwire.KindFlush:
		var f shardwire.Flush
		if err := shardwire.Decode(m.Body, &f); err != nil {
			return err
		}
		if r := s.runs[f.Run]; r != nil {
			s.seal(r, f.Round)
		}
	default:
		return fmt.Errorf("shard: the origin sent a %s message", m.Kind)
	}
	return nil
}

// keepFrame caches a model frame (b, which it keeps), forgetting the
// oldest beyond FrameCache.
func (s *Shard) keepFrame(id uint32, b []byte) {
	f := cachedFrame{id: id, b: b}
	s.frames = append(s.frames, f)
	if len(s.frames) > shardwire.FrameCache {
		s.frames = append(s.frames[:0:0], s.frames[len(s.frames)-shardwire.FrameCache:]...)
	}
}

func (s *Shard) frame(id uint32) []byte {
	for _, f := range s.frames {
		if f.id == id {
			return f.b
		}
	}
	return nil
}

// TabOpened takes a new tab connection; it reports false (and the host
// closes it with the code and reason given) when the shard is not linked
// to the origin or holds too many tabs.
func (s *Shard) TabOpened(id uint32, remote string) (ok bool, code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.linked:
		return false, CloseTryAgain, "the edge shard is not connected to the server yet; try again in a few seconds"
	case len(s.tabs) >= shardwire.MaxTabs:
		return false, CloseTryAgain, "the edge shard is full; try again later"
	case s.tabs[id] != nil:
		return false, ClosePolicy, "duplicate tab id"
	}
	if len(remote) > 64 {
		remote = remote[:64]
	}
	b, err := shardwire.Encode(nil, shardwire.KindTabOpen, id, &shardwire.TabOpen{Remote: remote})
	if err != nil {
		remote = ""
		b, _ = shardwire.Encode(nil, shardwire.KindTabOpen, id, &shardwire.TabOpen{})
	}
	s.tabs[id] = &tab{id: id, remote: remote}
	s.sendOrigin(b)
	return true, 0, ""
}

// Limit returns the largest message tab id may send now: a hello's size
// until it has joined, then its run's largest update. The host closes a
// tab that sends more (CloseTooBig) without reading the message.
func (s *Shard) Limit(id uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tabs[id]
	switch {
	case t == nil:
		return 0
	case t.client == "":
		return maxHelloBytes
	}
	if r := s.runs[t.run]; r != nil {
		return max(r.info.MaxFrameBytes, wire.MaxMessageBytes)
	}
	return wire.MaxMessageBytes
}

// TabClosed forgets a tab that went away.
func (s *Shard) TabClosed(id uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tabs[id]
	if t == nil {
		return
	}
	s.forget(t)
	b := shardwire.Append(nil, shardwire.KindTabClose, id, nil)
	s.sendOrigin(b)
}

// forget drops a tab; a task it held no longer holds up its round's partial.
func (s *Shard) forget(t *tab) {
	delete(s.tabs, t.id)
	if r := s.runs[t.run]; r != nil && t.task != nil {
		round := t.task.round
		s.clearTask(r, t)
		s.maybeSeal(r, round)
	}
}

// TabMessage handles a message a tab sent (within Limit).
func (s *Shard) TabMessage(id uint32, m link.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tabs[id]
	if t == nil {
		return
	}
	if !m.Binary {
		s.tabText(t, m.Data)
		return
	}
	if t.client == "" {
		s.h.CloseTab(id, ClosePolicy, "the first message must be a hello")
		s.forget(t)
		s.sendOrigin(shardwire.Append(nil, shardwire.KindTabClose, id, nil))
		return
	}
	s.update(t, m.Data)
}

// tabText relays a tab's control message to the origin, noting a decline.
func (s *Shard) tabText(t *tab, b []byte) {
	if len(b) > wire.MaxMessageBytes || (t.client == "" && t.texts >= maxPendingHellos) {
		s.h.CloseTab(t.id, ClosePolicy, "too many or too large messages")
		s.forget(t)
		s.sendOrigin(shardwire.Append(nil, shardwire.KindTabClose, t.id, nil))
		return
	}
	if t.client == "" {
		t.texts++
	}
	if t.task != nil {
		// A decline ends the tab's task; the origin decides on it.
		if msg, err := wire.ParseMessage(b, wire.MaxMessageBytes); err == nil {
			if d, ok := msg.(*wire.Decline); ok && d.Round == t.task.round {
				if r := s.runs[t.run]; r != nil {
					round := t.task.round
					t.answered = round
					s.clearTask(r, t)
					defer s.maybeSeal(r, round)
				}
			}
		}
	}
	s.sendOrigin(shardwire.Append(nil, shardwire.KindTabText, t.id, b))
}

// fromOrigin relays the origin's control message to a tab, learning from
// it: the tab's client id and run (welcome), its task (round_start), the
// end of a round or run.
func (s *Shard) fromOrigin(id uint32, b []byte) {
	t := s.tabs[id]
	if t == nil {
		return
	}
	msg, err := wire.ParseMessage(b, wire.MaxMessageBytes)
	if err != nil {
		s.opt.Log.Error("the origin sent a tab a message that does not parse", "err", err)
		return
	}
	r := s.runs[t.run]
	switch m := msg.(type) {
	case *wire.Welcome:
		t.client, t.run = m.ClientID, m.Run.ID
	case *wire.RoundStart:
		if r = s.runs[t.run]; r != nil {
			if t.task != nil {
				s.clearTask(r, t)
			}
			s.setTask(r, t, &task{round: m.Round, version: m.ModelVersion})
		}
		t.lastTask = m.Round
	case *wire.RoundEnd:
		if r != nil {
			s.roundEnded(r, m.Round)
		}
	case *wire.RunEnd:
		if r != nil && t.task != nil {
			s.clearTask(r, t)
		}
	}
	s.h.SendTab(id, link.Message{Data: append([]byte(nil), b...)})
}
