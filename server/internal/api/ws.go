package api

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

// WebSocket limits. Until a client has joined, a message may be at most a
// hello's size; the run then raises the limit to its model's largest update.
const (
	pongWait      = 60 * time.Second
	wsWriteWait   = 30 * time.Second
	wsReadLimit   = wire.MaxMessageBytes
	wsBufferBytes = 64 << 10
)

// websocket upgrades a participant's connection and hands it to the
// coordinator, which runs the protocol until the client leaves.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{ReadBufferSize: wsBufferBytes, WriteBufferSize: wsBufferBytes,
		EnableCompression: false, CheckOrigin: s.checkOrigin}
	ws, err := up.Upgrade(w, r, nil) // answers the client itself on failure
	if err != nil {
		s.log.Warn("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn := link.FromSocket(ws, link.SocketOptions{PongWait: pongWait, WriteWait: wsWriteWait, ReadLimit: wsReadLimit})
	if err := s.c.Serve(r.Context(), conn, coord.PeerInfo{Remote: r.RemoteAddr}); err != nil {
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
