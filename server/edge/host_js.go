//go:build js && wasm

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"syscall/js"
	"time"

	"github.com/qflare/qflare/server/internal/shard"
	"github.com/qflare/qflare/shared/link"
)

// memoryLimit is the Go heap's soft limit in the Durable Object: the
// isolate has 128 MB for Go's linear memory and the JS heap together.
const memoryLimit = 96 << 20

// Link back-off: from half a second to 30 s between attempts; a tab waits
// at most linkWait for a fresh object's link.
const (
	linkWait   = 5 * time.Second
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

var uint8Array = js.Global().Get("Uint8Array")

// host runs a shard in the Durable Object: it is the shard's Host over
// the glue's io object (shard.mjs), and the functions the glue calls
// (bind). The glue calls in on the isolate's one thread; the shard
// serialises its own state.
type host struct {
	io                  js.Value
	s                   *shard.Shard
	log                 *slog.Logger
	name, origin, token string
	config              error // what is wrong with the variables, if anything
	frames              []jsFrame
	buf                 []byte      // a tab's binary message, reused
	down                chan string // the link was lost
}

// jsFrame is a model frame copied into JS once, for every tab it goes to.
type jsFrame struct {
	id uint32
	v  js.Value
}

func newHost(io js.Value) *host {
	env := js.Global().Get("context").Get("env")
	get := func(k string) string {
		if v := env.Get(k); v.Type() == js.TypeString {
			return v.String()
		}
		return ""
	}
	h := &host{io: io, name: get("SHARD_NAME"), origin: strings.TrimRight(get("ORIGIN_URL"), "/"), token: get("SHARD_TOKEN"),
		down: make(chan string, 1), log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if h.name == "" {
		h.name = "shard"
	}
	h.config = checkConfig(h.name, h.origin, h.token)
	h.s = shard.New(h, shard.Options{Name: h.name, Log: h.log})
	return h
}

// checkConfig checks the Worker's variables.
func checkConfig(name, origin, token string) error {
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') || len(name) > 64 {
			return fmt.Errorf("SHARD_NAME %q: want 1 to 64 of [A-Za-z0-9_-]", name)
		}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("ORIGIN_URL %q: want the server's base URL, http:// or https://", origin)
	}
	if len(token) < 16 {
		return errors.New("SHARD_TOKEN: set it to the server's --shard-token (a secret of at least 16 characters)")
	}
	return nil
}

// bind gives the glue the functions it calls. A panic in one is logged
// and survives: it must not end the Go instance, and the shard with it.
func (h *host) bind() {
	b := js.Global().Get("context").Get("binding")
	fn := func(name string, f func(a []js.Value) any) {
		b.Set(name, js.FuncOf(func(_ js.Value, a []js.Value) (out any) {
			defer func() {
				if p := recover(); p != nil {
					h.log.Error("edge: a call from the glue panicked", "call", name, "panic", p)
					out = nil
				}
			}()
			return f(a)
		}))
	}
	fn("tabOpen", func(a []js.Value) any {
		return h.tabOpen(uint32(a[0].Int()), a[1].String(), a[2].String(), a[3].String())
	})
	fn("tabMessage", func(a []js.Value) any {
		h.tabMessage(uint32(a[0].Int()), a[1], a[2].Int())
		return nil
	})
	fn("tabClosed", func(a []js.Value) any {
		h.s.TabClosed(uint32(a[0].Int()))
		return nil
	})
	fn("originMessage", func(a []js.Value) any {
		h.originMessage(a[0])
		return nil
	})
	fn("originDown", func(a []js.Value) any {
		h.lost(a[0].String())
		return nil
	})
	fn("linked", func([]js.Value) any { return h.linkedPromise() })
}

// linkedPromise resolves once the shard is linked to the origin, or after
// linkWait: a tab that comes while it is not is refused, to try again.
func (h *host) linkedPromise() js.Value {
	return js.Global().Get("Promise").New(js.FuncOf(func(_ js.Value, a []js.Value) any {
		resolve := a[0]
		go func() {
			for deadline := time.Now().Add(linkWait); !h.s.Stats().Linked && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			resolve.Invoke()
		}()
		return nil
	}))
}

// tabOpen takes a tab's WebSocket; it answers null, or the close code and
// reason to refuse it with: cross-site pages, a shard not linked yet.
func (h *host) tabOpen(id uint32, remote, origin, host string) any {
	if origin != "" {
		if u, err := url.Parse(origin); err != nil || !strings.EqualFold(u.Host, host) {
			return refusal(shard.ClosePolicy, "a page of another site may not join through this shard")
		}
	}
	if ok, code, reason := h.s.TabOpened(id, remote); !ok {
		return refusal(code, reason)
	}
	return js.Null()
}

func refusal(code int, reason string) any {
	return map[string]any{"code": code, "reason": reason}
}

// tabMessage hands a tab's message of n bytes (a string's length in
// UTF-16 units: at most a third of its UTF-8 bytes) to the shard, after
// checking its size against the tab's limit and before copying it into Go.
func (h *host) tabMessage(id uint32, data js.Value, n int) {
	limit := h.s.Limit(id)
	if data.Type() == js.TypeString {
		if n > limit {
			h.tooBig(id)
			return
		}
		h.s.TabMessage(id, link.Message{Data: []byte(data.String())})
		return
	}
	if n > limit {
		h.tooBig(id)
		return
	}
	if cap(h.buf) < n {
		h.buf = make([]byte, n)
	}
	h.buf = h.buf[:n]
	js.CopyBytesToGo(h.buf, uint8Array.New(data))
	h.s.TabMessage(id, link.Message{Binary: true, Data: h.buf})
}

func (h *host) tooBig(id uint32) {
	h.io.Call("closeTab", id, shard.CloseTooBig, "message too big")
	h.s.TabClosed(id)
}

// originMessage hands the origin's message to the shard; one that breaks
// the protocol ends the link.
func (h *host) originMessage(data js.Value) {
	if data.Type() == js.TypeString {
		h.drop("the origin sent a text message")
		return
	}
	b := make([]byte, data.Get("byteLength").Int())
	js.CopyBytesToGo(b, uint8Array.New(data))
	if err := h.s.OriginMessage(b); err != nil {
		h.drop(err.Error())
	}
}

// drop closes the link the shard cannot go on with.
func (h *host) drop(reason string) {
	h.log.Error("closing the link to the origin", "reason", reason)
	h.io.Call("closeOrigin")
	h.lost(reason)
}

// lost forgets the link and wakes keepLinked.
func (h *host) lost(reason string) {
	h.s.OriginDown(reason)
	select {
	case h.down <- reason:
	default:
	}
}

// keepLinked links to the origin, and again whenever the link is lost,
// backing off from minBackoff to maxBackoff while it fails.
func (h *host) keepLinked() {
	if h.config != nil {
		h.log.Error("the edge shard cannot link to the origin", "err", h.config)
		return
	}
	backoff := minBackoff
	for {
		_, err := await(h.io.Call("dial", h.origin+"/shard", h.token))
		if err == nil {
			err = h.s.OriginUp()
		}
		if err == nil {
			h.log.Info("linked to the origin", "origin", h.origin, "shard", h.name)
			backoff = minBackoff
			reason := <-h.down
			h.log.Warn("link to the origin lost", "reason", reason)
			time.Sleep(minBackoff)
			continue
		}
		h.log.Warn("linking to the origin failed", "origin", h.origin, "err", err, "retry_in", backoff)
		time.Sleep(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

// await waits for a JS promise.
func await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	then := js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{v: a[0]}
		return nil
	})
	catch := js.FuncOf(func(_ js.Value, a []js.Value) any {
		ch <- result{err: errors.New(a[0].Call("toString").String())}
		return nil
	})
	defer then.Release()
	defer catch.Release()
	p.Call("then", then, catch)
	r := <-ch
	return r.v, r.err
}

// SendTab sends a control or binary message to a tab.
func (h *host) SendTab(id uint32, m link.Message) {
	if !m.Binary {
		h.io.Call("sendTab", id, string(m.Data))
		return
	}
	u := uint8Array.New(len(m.Data))
	js.CopyBytesToJS(u, m.Data)
	h.io.Call("sendTab", id, u)
}

// SendTabFrame sends a model frame, copied into JS once for all tabs.
func (h *host) SendTabFrame(id, fid uint32, f []byte) {
	var v js.Value
	for _, jf := range h.frames {
		if jf.id == fid {
			v = jf.v
		}
	}
	if v.IsUndefined() {
		v = uint8Array.New(len(f))
		js.CopyBytesToJS(v, f)
		// One JS copy at a time, as the shard keeps one frame.
		h.frames = append(h.frames[:0], jsFrame{id: fid, v: v})
	}
	h.io.Call("sendTab", id, v)
}

// CloseTab closes a tab's WebSocket.
func (h *host) CloseTab(id uint32, code int, reason string) {
	h.io.Call("closeTab", id, code, reason)
}

// SendOrigin sends a link message; the glue throws once the link is gone.
func (h *host) SendOrigin(b []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("edge: the link to the origin is gone: %v", p)
		}
	}()
	u := uint8Array.New(len(b))
	js.CopyBytesToJS(u, b)
	h.io.Call("sendOrigin", u)
	return nil
}

// statusHandler answers the Durable Object's plain requests with the
// shard's counters and memory (the front routes GET /shard/status here).
func (h *host) statusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := h.s.Stats()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.MemoryMB = float64(h.io.Call("memory").Int()) / 1e6
		st.HeapMB = float64(ms.HeapAlloc) / 1e6
		st.SysMB = float64(ms.Sys) / 1e6
		out := struct {
			shard.Stats
			Config string `json:"config_error,omitempty"`
		}{Stats: st}
		if h.config != nil {
			out.Config = h.config.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(out)
	})
}
