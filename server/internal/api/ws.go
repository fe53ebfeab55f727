package api

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// WebSocket limits. Until a client has joined, a message may be at most a
// hello's size; the run then raises the limit to its model's largest update.
// A message must arrive whole within Options.MessageWait of its first
// frame (DefaultMessageWait: a 9 MB update over a 1 Mbit/s uplink).
const (
	pongWait           = 60 * time.Second
	DefaultMessageWait = 2 * time.Minute
	wsWriteWait        = 30 * time.Second
	wsReadLimit        = wire.MaxMessageBytes
	// Write buffers come from a pool and are held only while a message is
	// written; reads use the HTTP server's 4 KiB buffer. An idle connection
	// thus holds no buffer of its own beyond that.
	wsWriteBuffer = 64 << 10
)

var writeBuffers sync.Pool

// websocket upgrades a participant's connection and hands it to the
// coordinator on a goroutine of its own, which runs the protocol until the
// client leaves and then closes the connection. The handler returns once
// the connection is handed over, so that the HTTP server's per-request
// state (its write buffers, the request, a deep goroutine stack) does not
// stay with every idle participant. An address that has sent too many
// failed hellos (a wrong join token, a run that does not exist) is refused
// before the upgrade until it has waited.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	if wait := s.hellos.wait(ip); wait > 0 {
		secs := int(wait.Seconds()) + 1
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed joins from this address; try again in %d s", secs))
		return
	}
	up := websocket.Upgrader{WriteBufferSize: wsWriteBuffer, WriteBufferPool: &writeBuffers,
		EnableCompression: false, CheckOrigin: s.checkOrigin}
	ws, err := up.Upgrade(w, r, nil) // answers the client itself on failure
	if err != nil {
		s.log.Warn("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn := link.FromSocket(ws, link.SocketOptions{PongWait: pongWait, MessageWait: s.opt.MessageWait,
		WriteWait: wsWriteWait, ReadLimit: wsReadLimit})
	closed := s.opt.Metrics.ConnOpened()
	pc := &participantConn{Conn: conn, ws: ws, s: s}
	// The request's context ends when this handler returns; the session
	// keeps its values only. The coordinator ends sessions on shutdown.
	ctx, remote, kex := context.WithoutCancel(r.Context()), r.RemoteAddr, KeyExchange(r)
	go func() {
		defer closed()
		err := s.c.Serve(ctx, pc, coord.PeerInfo{Remote: remote, KeyExchange: kex, Refused: func() { s.hellos.fail(ip) }})
		if err != nil {
			s.log.Info("participant connection ended", "remote", remote, "err", err)
		}
	}()
}

// Close codes and the bye a participant gets when the server shuts down.
const (
	closeServiceRestart = 1012 // RFC 6455 registry: the server is restarting
	restartReason       = "the server is shutting down for a restart; reconnect in a few seconds"
	byeWait             = 2 * time.Second
)

// participantConn is a participant's connection as the coordinator sees
// it: it counts the traffic for metrics, and when the coordinator closes it
// while the server drains it first sends a bye and closes the WebSocket
// with code 1012 (service restart), so that the client knows to reconnect.
type participantConn struct {
	link.Conn
	ws   *websocket.Conn
	s    *Server
	once sync.Once
}

func (c *participantConn) Send(ctx context.Context, m link.Message) error {
	err := c.Conn.Send(ctx, m)
	if err == nil {
		c.s.opt.Metrics.Message(false, m.Binary, len(m.Data))
	}
	return err
}

func (c *participantConn) Recv(ctx context.Context) (link.Message, error) {
	m, err := c.Conn.Recv(ctx)
	if err == nil {
		c.s.opt.Metrics.Message(true, m.Binary, len(m.Data))
	}
	return m, err
}

// Close closes the connection; see participantConn.
func (c *participantConn) Close() error {
	if c.s.draining.Load() {
		c.once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), byeWait)
			defer cancel()
			if b, err := wire.Marshal(&wire.Bye{Reason: restartReason}); err == nil {
				c.Send(ctx, link.Message{Data: b})
			}
			// Safe concurrently with a blocked write; the inner Close's own
			// close frame then fails quietly.
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeServiceRestart, "server restarting"),
				time.Now().Add(byeWait))
		})
	}
	return c.Conn.Close()
}

// SetReadLimit passes the run's frame limit on to the socket (the
// coordinator raises it once the client has joined).
func (c *participantConn) SetReadLimit(n int64) {
	if l, ok := c.Conn.(interface{ SetReadLimit(int64) }); ok {
		l.SetReadLimit(n)
	}
}

// checkOrigin allows same-origin pages (gorilla's default) and the
// configured extra origins.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || slices.Contains(s.opt.AllowedOrigins, origin)
}

func tokenOK(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// KeyExchange names the TLS key exchange r's connection negotiated, such as
// X25519MLKEM768 (post-quantum hybrid, what Go and current browsers agree
// on by default); "" for plain HTTP.
func KeyExchange(r *http.Request) string {
	if r.TLS == nil {
		return ""
	}
	if r.TLS.CurveID == 0 {
		return "unknown"
	}
	return r.TLS.CurveID.String()
}
