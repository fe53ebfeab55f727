package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/wire"
)

// Each test here reproduces a way one hostile participant or page could
// stall, hijack, exhaust or poison a public run on the seed engine, and
// checks that it no longer can.

// wsURL is the test server's participant endpoint.
func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws" }

// TestRebindingAndCrossSite: a request naming a host the server does not
// serve (DNS rebinding) is refused, WebSocket included; a cross-site
// state-changing request is refused even with a valid admin token, also on
// routes main adds (run_real_training).
func TestRebindingAndCrossSite(t *testing.T) {
	var hits atomic.Int32
	ts := newTestServerWith(t, func(o *api.Options) {
		o.Routes = map[string]http.Handler{"POST /api/fl/run_real_training": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
		})}
	})
	run := ts.createRun(map[string]any{"rounds": 1})
	get := func(host string) int {
		req, _ := http.NewRequest("GET", ts.URL+"/api/info", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, host := range []string{"localhost:8080", "127.0.0.1:8080", "[::1]:8080", "192.168.1.20:8080", "qflare.localhost"} {
		if code := get(host); code != http.StatusOK {
			t.Errorf("GET /api/info with Host %s = %d; want 200", host, code)
		}
	}
	if code := get("evil.example:8080"); code != http.StatusMisdirectedRequest {
		t.Errorf("GET /api/info with Host evil.example = %d; want 421", code)
	}
	h := http.Header{"Origin": {"http://evil.example:8080"}, "Host": {"evil.example:8080"}}
	d := websocket.Dialer{}
	if c, resp, err := d.Dial(ts.wsURL(), h); err == nil {
		c.Close()
		t.Errorf("a WebSocket with foreign Origin and Host was accepted")
	} else if resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a WebSocket with foreign Origin and Host: %v; want 421", err)
	}

	post := func(path, site string, auth bool) int {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader("target_participants=1"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
			req.Header.Set("Origin", "http://evil.example")
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+adminToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/api/fl/run_real_training", "cross-site", false); code != http.StatusForbidden || hits.Load() != 0 {
		t.Errorf("cross-site form POST to run_real_training = %d (%d handled); want 403, not handled", code, hits.Load())
	}
	if code := post("/api/runs/"+run.ID+"/stop", "cross-site", true); code != http.StatusForbidden {
		t.Errorf("cross-site POST stop with the admin token = %d; want 403", code)
	}
	if code := post("/api/fl/run_real_training", "", false); code != http.StatusOK || hits.Load() != 1 {
		t.Errorf("POST run_real_training without a browser origin = %d; want it handled", code)
	}
}

// TestTokenGuessingIsLimited: after a burst of failed hellos an address
// must wait before the server hears it again.
func TestTokenGuessingIsLimited(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 1})
	guess := func() (int, error) {
		c, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil)
		if err != nil {
			if resp != nil {
				return resp.StatusCode, nil
			}
			return 0, err
		}
		defer c.Close()
		b, _ := wire.Marshal(&wire.Hello{V: wire.Version, Run: run.ID, Token: "guess",
			Device: wire.Device{Kind: wire.DeviceHeadless}})
		c.WriteMessage(websocket.TextMessage, b)
		_, msg, err := c.ReadMessage()
		if err != nil {
			return 0, err
		}
		m, err := wire.ParseMessage(msg, wire.MaxMessageBytes)
		if rej, ok := m.(*wire.Rejected); !ok || rej.Code != wire.CodeAuth {
			return 0, fmt.Errorf("a wrong token was answered %s", msg)
		}
		return http.StatusSwitchingProtocols, err
	}
	for i := range 10 {
		if code, err := guess(); err != nil || code != http.StatusSwitchingProtocols {
			t.Fatalf("guess %d: %d, %v; want a refused hello", i+1, code, err)
		}
	}
	code, err := guess()
	if err != nil || code != http.StatusTooManyRequests {
		t.Errorf("guess 11 = %d, %v; want 429 before the upgrade", code, err)
	}
}

// TestUnfinishedMessageTimesOut: a joined client that starts a message and
// then sends only pongs is disconnected once the message deadline passes.
func TestUnfinishedMessageTimesOut(t *testing.T) {
	ts := newTestServerWith(t, func(o *api.Options) { o.MessageWait = time.Second })
	run := ts.createRun(map[string]any{"rounds": 1, "min_clients": 5})
	c, _, err := websocket.DefaultDialer.Dial(ts.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := wire.Marshal(&wire.Hello{V: wire.Version, Run: run.ID, Token: run.token(), Device: wire.Device{Kind: wire.DeviceHeadless}})
	c.WriteMessage(websocket.TextMessage, b)
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	w, err := c.NextWriter(websocket.BinaryMessage)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 64<<10)) // more than the write buffer: the first fragment goes out
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			t.Logf("disconnected %v after the first fragment", time.Since(start).Round(time.Millisecond))
			return
		case <-tick.C:
			c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
			if time.Since(start) > 10*time.Second {
				t.Fatal("a connection holding an unfinished message with pongs is still open after 10 s; want it closed after 1 s")
			}
		}
	}
}

// TestJoinURLIsAbsolute: the join URL the API hands out works as is for
// the headless client.
func TestJoinURLIsAbsolute(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 1})
	if !strings.HasPrefix(run.JoinURL, ts.URL+"/join/"+run.ID+"?token=") {
		t.Errorf("join_url = %q; want an absolute URL starting %s/join/", run.JoinURL, ts.URL)
	}
}

// TestBadConfigIsA400: configurations that fail only when the data is cut
// into slices are refused with 400 and the reason, not 500.
func TestBadConfigIsA400(t *testing.T) {
	ts := newTestServer(t)
	for _, cfg := range []map[string]any{
		{"clients": 100000, "partition": "shards:2"},
		{"clients": 50000, "partition": "shards:2"},
	} {
		var e struct{ Error string }
		if code := ts.do("POST", "/api/runs", adminToken, cfg, &e); code != http.StatusBadRequest || e.Error == "" {
			t.Errorf("POST /api/runs %v = %d %q; want 400 with the reason", cfg, code, e.Error)
		}
	}
}

// TestStreamEndsWithTheRun: a run's event stream ends with an "end" event
// and closes; a run that is over gets its state and "end" at once, so
// pages stop reconnecting.
func TestStreamEndsWithTheRun(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 1})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	read := func(stop bool) (events []string, closed bool) {
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/runs/"+run.ID+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events = append(events, ev)
				if stop && ev == "snapshot" && len(events) == 1 {
					go func() {
						defer close(stopped)
						ts.do("POST", "/api/runs/"+run.ID+"/stop", adminToken, nil, nil)
					}()
				}
			}
		}
		return events, sc.Err() == nil
	}
	evs, closed := read(true)
	<-stopped
	if !closed || len(evs) < 2 || evs[len(evs)-1] != "end" {
		t.Fatalf("live stream gave %v (closed: %v); want it to end with \"end\" and close", evs, closed)
	}
	evs, closed = read(false)
	if !closed || strings.Join(evs, ",") != "snapshot,end" {
		t.Errorf("stream of a stopped run gave %v (closed: %v); want snapshot, end", evs, closed)
	}
	if code := ts.do("POST", "/api/runs/"+run.ID+"/stop", adminToken, nil, nil); code != http.StatusConflict {
		t.Errorf("stopping a stopped run = %d; want 409", code)
	}
}

// TestUpdatesArePaged: GET /updates answers a page at a time, with a Link
// to the next one.
func TestUpdatesArePaged(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 1})
	for i := range 7 {
		if _, err := ts.st.AddUpdate(context.Background(), &store.Update{RunID: run.ID, Round: 1,
			ClientID: fmt.Sprint("c", i), Code: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	path := "/api/runs/" + run.ID + "/updates?limit=3"
	var seen []int64
	for path != "" {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page []updateResp
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		for _, u := range page {
			seen = append(seen, u.ID)
		}
		path = ""
		if link := resp.Header.Get("Link"); link != "" {
			path = strings.TrimSuffix(strings.TrimPrefix(strings.Split(link, ";")[0], "<"), ">")
		}
		if len(seen) > 20 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 7 {
		t.Errorf("paging saw %d updates; want 7", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Errorf("pages give ids %v; want them ascending, each once", seen)
			break
		}
	}
}

// TestUpdatesTellTheirTask: a stored update says when its task was sent,
// which profile its client emulates and how stale it was, so the dashboard
// can draw a finished run's timeline.
func TestUpdatesTellTheirTask(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 1})
	sent := time.UnixMilli(1_700_000_000_000).UTC()
	if _, err := ts.st.AddUpdate(context.Background(), &store.Update{RunID: run.ID, Round: 1, ClientID: "c1", Code: "test",
		TaskAt: sent, ReceivedAt: sent.Add(1500 * time.Millisecond), Staleness: 2, Profile: "phone-low"}); err != nil {
		t.Fatal(err)
	}
	var got []struct {
		TaskAt     time.Time `json:"task_at"`
		ReceivedAt time.Time `json:"received_at"`
		Staleness  int       `json:"staleness"`
		Profile    string    `json:"profile"`
	}
	ts.do("GET", "/api/runs/"+run.ID+"/updates", "", nil, &got)
	if len(got) != 1 || !got[0].TaskAt.Equal(sent) || got[0].ReceivedAt.Sub(got[0].TaskAt) != 1500*time.Millisecond ||
		got[0].Staleness != 2 || got[0].Profile != "phone-low" {
		t.Errorf("GET /updates = %+v; want the task sent at %v, received 1.5s later, 2 steps stale, phone-low", got, sent)
	}
}

// TestPublicRunsAreDefended: a public run gets a norm bound and detection
// by default, so one stranger's huge update is refused; a run that is not
// public keeps exactly the settings its creator gave.
func TestPublicRunsAreDefended(t *testing.T) {
	ts := newTestServer(t)
	var pub struct {
		ID      string         `json:"id"`
		JoinURL string         `json:"join_url"`
		Config  map[string]any `json:"config"`
	}
	ts.do("POST", "/api/runs", adminToken, map[string]any{"model": "mlp:16", "public": true, "rounds": 3,
		"clients_per_round": 1, "min_clients": 1, "eval_limit": 500}, &pub)
	if pub.Config["detect"] != true || pub.Config["max_update_norm"] != float64(1000) {
		t.Errorf("public run config %v; want detect true and max_update_norm 1000", pub.Config)
	}
	var priv struct{ Config map[string]any }
	ts.do("POST", "/api/runs", adminToken, map[string]any{"model": "mlp:16", "rounds": 3}, &priv)
	if priv.Config["detect"] != false || priv.Config["max_update_norm"] != float64(0) {
		t.Errorf("admin run config %v; want detect false and max_update_norm 0 as given", priv.Config)
	}
	raw := ts.rawJoin(runResp{ID: pub.ID, JoinURL: pub.JoinURL}, nil)
	rs, w := raw.roundModel()
	far := make([]float32, len(w))
	for i := range far {
		far[i] = w[i] + 100
	}
	raw.sendBinary(raw.updateFrame(rs, far, nil))
	if rej := nextOf[*wire.Rejected](raw); rej.Code != wire.CodeNorm {
		t.Errorf("a huge update to the public run was answered %+v; want refused for its norm", rej)
	}
}
