package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/shared/link"
)

// shard links an edge shard (GET /shard with "Authorization: Bearer
// SHARD_TOKEN", served when Options.ShardToken is set) and hands the link
// to the coordinator, which runs it until it breaks. A wrong token counts
// as a failed hello of the address; the shard's tabs are limited per their
// own address, as the shard reports it.
func (s *Server) shard(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	if wait := s.hellos.wait(ip); wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		writeError(w, http.StatusTooManyRequests, "too many failed links from this address")
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !tokenOK(tok, s.opt.ShardToken) {
		s.hellos.fail(ip)
		writeError(w, http.StatusUnauthorized, "an edge shard links with Authorization: Bearer SHARD_TOKEN (serve --shard-token)")
		return
	}
	// Shards are not browsers: the token, which no page can send on a
	// WebSocket, is what admits them.
	up := websocket.Upgrader{WriteBufferSize: wsWriteBuffer, WriteBufferPool: &writeBuffers,
		CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.log.Warn("edge shard upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn := link.FromSocket(ws, link.SocketOptions{PongWait: pongWait, MessageWait: s.opt.MessageWait,
		WriteWait: wsWriteWait, ReadLimit: shardwire.MaxMessage})
	defer s.opt.Metrics.ShardLinked()()
	err = s.c.ServeShard(r.Context(), &shardLinkConn{Conn: conn, s: s}, coord.ShardInfo{
		Remote: r.RemoteAddr, TabWait: s.hellos.wait, TabRefused: s.hellos.fail, Draining: s.draining.Load})
	if err != nil {
		s.log.Warn("edge shard link ended", "remote", r.RemoteAddr, "err", err)
	}
}

// shardLinkConn counts a shard link's traffic for metrics.
type shardLinkConn struct {
	link.Conn
	s *Server
}

func (c *shardLinkConn) Send(ctx context.Context, m link.Message) error {
	err := c.Conn.Send(ctx, m)
	if err == nil {
		c.s.opt.Metrics.ShardMessage(false, len(m.Data))
	}
	return err
}

func (c *shardLinkConn) Recv(ctx context.Context) (link.Message, error) {
	m, err := c.Conn.Recv(ctx)
	if err == nil {
		c.s.opt.Metrics.ShardMessage(true, len(m.Data))
	}
	return m, err
}
