package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/shard"
	"github.com/qflare/qflare/server/internal/shardwire"
	"github.com/qflare/qflare/shared/link"
)

const shardToken = "test-shard-token-0123456789"

// nativeShard runs a shard (package shard) natively in front of ts, as
// the edge Worker does: tabs' WebSockets at /ws, everything else proxied
// to the origin, one link to the origin's /shard.
func nativeShard(t *testing.T, ts *testServer, name string) (base string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	conns := shard.NewConns(shard.Options{Name: name})
	h := http.Header{"Authorization": {"Bearer " + shardToken}}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/shard", h)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(shardwire.MaxMessage)
	go conns.Link(ctx, link.FromSocket(ws, link.SocketOptions{}))
	waitFor(t, 5*time.Second, "the shard to link", func() bool { return conns.Shard().Stats().Linked })
	origin, _ := url.Parse(ts.URL)
	mux := http.NewServeMux()
	mux.Handle("/", httputil.NewSingleHostReverseProxy(origin))
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		tab, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns.Tab(ctx, link.FromSocket(tab, link.SocketOptions{}), r.RemoteAddr)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestShardLinkNeedsTheToken: /shard exists only with a shard token, and
// refuses a link without it.
func TestShardLinkNeedsTheToken(t *testing.T) {
	plain := newTestServer(t)
	if code := plain.do("GET", "/shard", shardToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("GET /shard on a server without --shard-token = %d; want 404", code)
	}
	ts := newTestServerWith(t, func(o *api.Options) { o.ShardToken = shardToken })
	for _, tok := range []string{"", "wrong-token-wrong-token"} {
		if code := ts.do("GET", "/shard", tok, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("GET /shard with token %q = %d; want 401", tok, code)
		}
	}
}

// TestFederationThroughShards: headless clients join through two native
// shards over real WebSockets, as tabs join through edge Workers, with
// nothing changed in the client (their slices come through the shard's
// proxy); the run trains to the end, every update is stored, and each
// round's updates came as partials.
func TestFederationThroughShards(t *testing.T) {
	ts := newTestServerWith(t, func(o *api.Options) { o.ShardToken = shardToken })
	eu, us := nativeShard(t, ts, "eu"), nativeShard(t, ts, "us")
	run := ts.createRun(map[string]any{"rounds": 3, "clients_per_round": 4, "min_clients": 4})
	for _, base := range []string{eu, us} {
		ts2 := *ts
		ts2.URL = base
		stop := ts2.runClients(run, 2, 1)
		defer stop()
	}
	waitFor(t, 3*time.Minute, "3 aggregated rounds", func() bool {
		rs := ts.rounds(run.ID)
		return len(rs) == 3 && rs[2].Status == "aggregated"
	})
	rs := ts.rounds(run.ID)
	for _, r := range rs {
		if r.NAccepted != 4 {
			t.Errorf("round %d = %+v; want 4 accepted", r.Round, r)
		}
	}
	if !(rs[0].TestAccuracy > 0.5 && rs[2].TestAccuracy > rs[0].TestAccuracy) {
		t.Errorf("test accuracy by round %.4f, %.4f, %.4f; want it above 0.5 and rising", rs[0].TestAccuracy, rs[1].TestAccuracy, rs[2].TestAccuracy)
	}
	ps, err := ts.st.Partials(context.Background(), run.ID, 0)
	if err != nil || len(ps) < 6 {
		t.Errorf("%d partials stored (%v); want at least one per shard per round", len(ps), err)
	}
}
