//go:build js && wasm

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/profile"
	"github.com/qflare/qflare/shared/wire"
)

// In the browser this program runs in a Web Worker that www/static/worker.js
// starts. The worker script stores the page's first message in
// self.qflareBoot before it runs the program, queues later messages in
// self.qflareQueue, and hands them to self.qflareDeliver once the program
// defines it. The boot message's role says what the worker is:
//
//   - "lead": the participant. It opens the WebSocket, follows the protocol
//     (package participant), downloads the data slice, trains with the
//     helpers and posts what happens to the page as JSON events.
//   - "helper": trains a shard of the lead's data on request, over the
//     MessagePort in boot.port (see poolTrainer).

// Reconnection back-off after a network drop.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second
	// stableSession is how long a session must have lasted for the next
	// drop to start the back-off again from backoffMin.
	stableSession = 30 * time.Second
)

func main() {
	boot := js.Global().Get("qflareBoot")
	switch boot.Get("role").String() {
	case "helper":
		runHelper(boot)
	default:
		newLead(boot).run()
	}
}

// lead is the worker that runs the participant.
type lead struct {
	boot  js.Value
	self  js.Value // the worker's global scope, to post to the page
	ports []js.Value

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	conn    *wsConn // the current connection, for Leave
	leaving bool
	trainer *poolTrainer
}

func newLead(boot js.Value) *lead {
	l := &lead{boot: boot, self: js.Global()}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if ps := boot.Get("ports"); ps.Truthy() {
		for i := range ps.Length() {
			l.ports = append(l.ports, ps.Index(i))
		}
	}
	return l
}

// post sends the page a message of the given type with fields.
func (l *lead) post(typ string, fields map[string]any) {
	o := object(fields)
	o.Set("type", typ)
	postMessage(l.self, o)
}

// event forwards a participant event to the page as JSON.
func (l *lead) event(e participant.Event) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	l.post("event", map[string]any{"json": string(b)})
}

// listen takes the page's later messages (Leave).
func (l *lead) listen() {
	deliver := js.FuncOf(func(_ js.Value, args []js.Value) any {
		if arg(args, 0).Get("type").String() == "leave" {
			go l.leave()
		}
		return nil
	})
	js.Global().Set("qflareDeliver", deliver)
	q := js.Global().Get("qflareQueue")
	for i := range q.Length() {
		deliver.Invoke(q.Index(i))
	}
	q.Set("length", 0)
}

// leave says bye to the server and stops the participant for good. The
// bye may sit in the socket's buffer behind an upload on a slow link, and
// the page ends this worker, socket and buffer with it, as soon as it
// hears that the participant stopped: so leave waits (up to leaveWait,
// within the page's own 3 s) for the buffer to empty before it closes.
func (l *lead) leave() {
	l.mu.Lock()
	l.leaving = true
	c := l.conn
	l.mu.Unlock()
	if c != nil {
		if b, err := wire.Marshal(&wire.Bye{Reason: "the participant left"}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), leaveWait)
			if c.Send(ctx, link.Message{Data: b}) == nil {
				c.drained(ctx)
			}
			cancel()
		}
		c.Close()
	}
	l.cancel()
}

// leaveWait bounds how long leave waits for its bye to leave the browser.
const leaveWait = 2 * time.Second

func (l *lead) isLeaving() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leaving
}

func (l *lead) run() {
	l.listen()
	opt, err := l.options()
	if err != nil {
		l.post("stopped", map[string]any{"reason": err.Error(), "code": "cannot_join", "error": true})
		return
	}
	client := participant.New(opt)
	reason, code, failed := l.keepConnected(client)
	if l.trainer != nil {
		l.trainer.close()
	}
	l.post("stopped", map[string]any{"reason": reason, "code": code, "error": failed})
}

// options builds the participant's options from the boot message.
func (l *lead) options() (participant.Options, error) {
	b := l.boot
	dev := b.Get("device")
	opt := participant.Options{
		Run: b.Get("run").String(), Token: b.Get("token").String(), ClientID: b.Get("client_id").String(),
		Secret:       jsString(b.Get("secret")),
		IdentitySeed: identitySeed(b.Get("identity_seed")),
		Device: wire.Device{Kind: wire.DeviceBrowser, UserAgent: clip(dev.Get("user_agent").String(), 512),
			Platform: clip(dev.Get("platform").String(), 64), Cores: min(dev.Get("cores").Int(), 1024),
			MemoryGB: dev.Get("memory_gb").Float(), Workers: 1 + len(l.ports)},
		Events:   l.event,
		Yield:    new(yielder).maybe,
		Slowdown: min(max(jsFloat(b.Get("slowdown")), 1), 100),
		NewTrainer: func(m *nn.Model, set *data.Set) (participant.Trainer, error) {
			if l.trainer != nil {
				l.trainer.close()
			}
			l.trainer = newPoolTrainer(m, set, l.ports)
			return l.trainer, nil
		},
	}
	if name := jsString(b.Get("profile")); name != "" {
		p, err := profile.Lookup(name)
		if err != nil {
			return opt, fmt.Errorf("the address asks this tab to emulate the device profile %q (?profile=%s), which does not exist; known profiles: %s",
				clip(name, 40), clip(name, 40), strings.Join(profile.Names(), ", "))
		}
		opt.Profile = &p
		l.post("profile", map[string]any{"name": p.Name, "gflops": p.TrainGFLOPS, "down_mbps": p.DownMbps,
			"up_mbps": p.UpMbps, "rtt_ms": p.RTT.Milliseconds(), "drop": p.DropProb})
	}
	origin := b.Get("origin").String()
	opt.Fetch = func(ctx context.Context, w *wire.Welcome) (*data.Set, error) {
		u, err := sliceURL(origin, opt.Token, w)
		if err != nil {
			return nil, err
		}
		return fetchSlice(ctx, u, w, func(done, total int) {
			l.post("transfer", map[string]any{"what": "slice", "done": done, "total": total})
		})
	}
	if own := b.Get("own"); own.Truthy() {
		s := b.Get("shape")
		set, err := ownSet(own, ownShape{Dataset: s.Get("dataset").String(), H: s.Get("h").Int(), W: s.Get("w").Int(),
			C: s.Get("c").Int(), Classes: s.Get("classes").Int(), maxSamples: data.MaxSamples})
		if err != nil {
			return opt, err
		}
		opt.Data = set
	}
	return opt, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// keepConnected runs sessions, reconnecting with exponential back-off and
// jitter after a drop, until the run ends, the server refuses the client,
// or the person leaves. It returns why it stopped.
func (l *lead) keepConnected(client *participant.Client) (reason, code string, failed bool) {
	url := l.boot.Get("ws_url").String()
	backoff := backoffMin
	for attempt := 1; ; attempt++ {
		l.post("conn", map[string]any{"state": "connecting", "attempt": attempt})
		conn, err := dial(l.ctx, url)
		if err == nil {
			conn.sent = func(done, total int) {
				l.post("transfer", map[string]any{"what": "upload", "done": done, "total": total})
			}
			l.mu.Lock()
			l.conn = conn
			leaving := l.leaving
			l.mu.Unlock()
			if leaving {
				conn.Close()
				return "you left the run", "left", false
			}
			l.post("conn", map[string]any{"state": "connected", "attempt": attempt})
			started := time.Now()
			err = client.Session(l.ctx, conn)
			if time.Since(started) > stableSession {
				backoff = backoffMin
			}
		}
		var refused *participant.RefusedError
		switch {
		case l.ctx.Err() != nil || l.isLeaving():
			return "you left the run", "left", false
		case errors.Is(err, participant.ErrRunEnded):
			return "the run is over", "run_end", false
		case errors.As(err, &refused):
			return refused.Reason, refused.Code, true
		}
		wait := time.Duration(float64(backoff) * (0.5 + rand.Float64()))
		l.post("conn", map[string]any{"state": "retrying", "attempt": attempt, "retry_ms": wait.Milliseconds(), "error": errText(err)})
		select {
		case <-time.After(wait):
		case <-l.ctx.Done():
			return "you left the run", "left", false
		}
		backoff = min(2*backoff, backoffMax)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// jsString returns v's string value, or "" when v is not a string.
func jsString(v js.Value) string {
	if v.Type() != js.TypeString {
		return ""
	}
	return v.String()
}

// identitySeed decodes the identity seed the page kept (base64, as the
// identity event gave it); anything else gives none, and the participant
// makes a new identity.
func identitySeed(v js.Value) []byte {
	b, err := base64.StdEncoding.DecodeString(jsString(v))
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

// jsFloat returns v's number value, or 0 when v is not a number.
func jsFloat(v js.Value) float64 {
	if v.Type() != js.TypeNumber {
		return 0
	}
	return v.Float()
}
