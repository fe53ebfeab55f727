package api

import (
	"crypto/subtle"
	"errors"
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
// coordinator, which runs the protocol until the client leaves. An address
// that has sent too many failed hellos (a wrong join token, a run that does
// not exist) is refused before the upgrade until it has waited.
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
	err = s.c.Serve(r.Context(), conn, coord.PeerInfo{Remote: r.RemoteAddr})
	if errors.Is(err, coord.ErrAuth) {
		s.hellos.fail(ip)
	}
	if err != nil {
		s.log.Info("participant connection ended", "remote", r.RemoteAddr, "err", err)
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
