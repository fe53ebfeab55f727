// Package e2e tests QFLARE end to end in real headless Chromium: the server
// runs in-process (coordinator, store, API and the www pages), the pages
// load the freshly built client.wasm, and tabs train in Web Workers.
//
// The tests need chromium (or $QFLARE_CHROME); without a browser they skip.
// TestMain builds client.wasm into a temporary folder with build/wasm.sh
// (the pages' libraries are committed in www/static/vendor).
//
// Screenshots go to $QFLARE_ARTIFACTS (default out/screenshots); with
// QFLARE_UPDATE_SCREENSHOTS=1 they are also copied to www/screenshots.
// QFLARE_BENCH_WORKERS=1 adds the 1-vs-2-worker speed measurement.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
	"github.com/qflare/qflare/www"
)

const adminToken = "e2e-admin-token"

var (
	chrome    string // browser executable; empty: tests skip
	skipWhy   string
	repoRoot  string
	staticFS  fs.FS // freshly built files over www/static on disk
	artifacts string
)

func TestMain(m *testing.M) {
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = filepath.Join(wd, "..", "..", "..")
	chrome, skipWhy = findChrome()
	if chrome == "" {
		return m.Run() // every test skips with skipWhy
	}
	built, err := os.MkdirTemp("", "qflare-e2e-static-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(built)
	for _, script := range [][]string{{"build/wasm.sh", built}, {"build/vendor.sh", filepath.Join(built, "vendor")}} {
		cmd := exec.Command("sh", script...)
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s failed: %v\n%s", script[0], err, out)
			return 1
		}
	}
	staticFS = overlay{os.DirFS(built), os.DirFS(filepath.Join(repoRoot, "www", "static"))}
	artifacts = os.Getenv("QFLARE_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(repoRoot, "out", "screenshots")
	}
	return m.Run()
}

// findChrome returns the browser to drive, or why there is none.
func findChrome() (path, why string) {
	if p := os.Getenv("QFLARE_CHROME"); p != "" {
		return p, ""
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, ""
		}
	}
	return "", "no Chromium found (install chromium or set QFLARE_CHROME): skipping the browser end-to-end tests"
}

func needBrowser(t *testing.T) {
	t.Helper()
	if chrome == "" {
		t.Skip(skipWhy)
	}
}

// overlay serves a name from the first file system that has it.
type overlay []fs.FS

func (o overlay) Open(name string) (fs.File, error) {
	for _, f := range o {
		if file, err := f.Open(name); err == nil {
			return file, nil
		}
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// env is a running server.
type env struct {
	t   *testing.T
	srv *httptest.Server
	c   *coord.Coordinator
	rec *recorder
}

var loadData = sync.OnceValues(func() (*data.Set, error) {
	train, _, err := datasets.Load("mnist", "")
	return train, err
})

// newEnv starts the server in-process on a temporary database, with the
// participant WebSocket instrumented and slice downloads counted.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "e2e.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := coord.New(coord.Deps{Store: st, Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	e := &env{t: t, c: c, rec: newRecorder()}
	apiHandler := api.New(api.Options{Coord: c, AdminToken: adminToken, Assets: www.HandlerFS(staticFS)})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", e.websocket)
	mux.Handle("/", e.rec.http(apiHandler))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		c.Close()
		st.Close()
	})
	return e
}

// websocket is the API's participant endpoint with every message recorded.
func (e *env) websocket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn := link.FromSocket(ws, link.SocketOptions{PongWait: 60 * time.Second, WriteWait: 30 * time.Second, ReadLimit: wire.DefaultMaxFrameBytes})
	e.c.Serve(r.Context(), e.rec.wrap(conn), coord.PeerInfo{Remote: r.RemoteAddr})
}

// createRun creates a run through the API and returns its id and join URL.
func (e *env) createRun(cfg map[string]any) (id, joinURL string) {
	e.t.Helper()
	var out struct {
		ID      string `json:"id"`
		JoinURL string `json:"join_url"`
		Error   string `json:"error"`
	}
	e.api("POST", "/api/runs", cfg, &out)
	if out.ID == "" || out.JoinURL == "" {
		e.t.Fatalf("POST /api/runs = %+v; want a run with a join URL", out)
	}
	return out.ID, out.JoinURL
}

// api calls the REST API as the admin and decodes the JSON answer.
func (e *env) api(method, path string, body, out any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		e.t.Fatalf("%s %s = %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// roundsJSON is what GET /api/runs/{id}/rounds answers.
type roundJSON struct {
	Round        int     `json:"round"`
	Status       string  `json:"status"`
	NAccepted    int     `json:"n_accepted"`
	TestAccuracy float64 `json:"test_accuracy"`
}

func (e *env) rounds(run string) []roundJSON {
	var rs []roundJSON
	e.api("GET", "/api/runs/"+run+"/rounds", nil, &rs)
	return rs
}

// aggregated returns how many rounds of run have been aggregated.
func (e *env) aggregated(run string) int {
	r, err := e.c.Run(run)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(r.View().ModelVersion)
}

// browser starts a headless Chromium for the test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	return ctx
}

// tab is one browser tab.
type tab struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc
}

// openTab opens url in a new tab of the browser and logs its console.
func openTab(t *testing.T, browserCtx context.Context, name, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	tb := &tab{t: t, name: name, ctx: ctx, cancel: cancel}
	var logging sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		logging.Wait() // no t.Logf after the test ends
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	logging.Add(1)
	go func() {
		defer logging.Done()
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type != "debug" && m.Type != "info" {
				t.Logf("%s console %s: %s", name, m.Type, m.Text)
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: navigating to %s: %v", name, url, err)
	}
	return tb
}

// eval evaluates a JavaScript expression in the tab and decodes its value.
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("%s: evaluating %s: %v", tb.name, js, err)
	}
	return v
}

// waitFor polls a JavaScript condition in the tab until it is true.
// patience scales every wait: the tests poll, so a generous limit costs
// nothing when things go well and keeps a loaded machine (CI, -race) from
// failing them. QFLARE_E2E_PATIENCE overrides it.
var patience = func() time.Duration {
	if p, err := strconv.Atoi(os.Getenv("QFLARE_E2E_PATIENCE")); err == nil && p > 0 {
		return time.Duration(p)
	}
	return 4
}()

func (tb *tab) waitFor(what, cond string, timeout time.Duration) {
	timeout *= patience
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if eval[bool](tb, "!!("+cond+")") {
			return
		}
		if time.Now().After(deadline) {
			state := eval[string](tb, `JSON.stringify({state: qflare.state, conn: qflare.conn, stopped: qflare.stopped, round: qflare.round, events: qflare.events.slice(-5)})`)
			tb.t.Fatalf("%s: %s did not happen within %v; page state %s", tb.name, what, timeout, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// screenshot writes a full-page PNG to the artifacts folder (and to
// www/screenshots when QFLARE_UPDATE_SCREENSHOTS=1).
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	eval[bool](tb, `window.scrollTo(0, 0), true`)
	buf, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Errorf("%s: screenshot: %v", tb.name, err)
		return
	}
	tb.save(name, buf)
}

// screenshotViewport writes what the tab's screen shows (a phone's first
// screen, say), as screenshot does.
func (tb *tab) screenshotViewport(name string) {
	tb.t.Helper()
	eval[bool](tb, `window.scrollTo(0, 0), true`)
	buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Errorf("%s: screenshot: %v", tb.name, err)
		return
	}
	tb.save(name, buf)
}

// screenshotOf writes a PNG of the first element css matches (one card of
// a page, say), as screenshot does.
func (tb *tab) screenshotOf(name, css string) {
	tb.t.Helper()
	buf, err := chromedp.Run(tb.ctx, chromedp.Screenshot(chromedp.CSS(css)))
	if err != nil {
		tb.t.Errorf("%s: screenshot of %s: %v", tb.name, css, err)
		return
	}
	tb.save(name, buf)
}

func (tb *tab) save(name string, buf []byte) {
	tb.t.Helper()
	dirs := []string{artifacts}
	if os.Getenv("QFLARE_UPDATE_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join(repoRoot, "www", "screenshots"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.t.Error(err)
			continue
		}
		p := filepath.Join(d, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			tb.t.Error(err)
			continue
		}
		tb.t.Logf("screenshot %s", p)
	}
}

// waitUntil polls cond (Go side) until it holds.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	timeout *= patience
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// recorder keeps what crossed the participant WebSockets and which data
// slices were downloaded. Safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	conns  []*recConn
	slices map[string][]string // run → client ids whose slice was fetched
	posts  []string            // requests with a body from the browser
}

func newRecorder() *recorder { return &recorder{slices: map[string][]string{}} }

// http wraps the API handler to note slice downloads and writes.
func (r *recorder) http(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
		if len(parts) == 4 && parts[0] == "api" && parts[1] == "runs" && parts[3] == "slice" {
			r.mu.Lock()
			r.slices[parts[2]] = append(r.slices[parts[2]], req.URL.Query().Get("client"))
			r.mu.Unlock()
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead && strings.Contains(req.UserAgent(), "Chrome") {
			r.mu.Lock()
			r.posts = append(r.posts, req.Method+" "+req.URL.Path)
			r.mu.Unlock()
		}
		next.ServeHTTP(w, req)
	})
}

// browserWrites returns the browser's requests that could carry a body.
func (r *recorder) browserWrites() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.posts...)
}

func (r *recorder) wrap(c link.Conn) link.Conn {
	rc := &recConn{Conn: c}
	r.mu.Lock()
	r.conns = append(r.conns, rc)
	r.mu.Unlock()
	return rc
}

// slicesOf returns the client ids that downloaded a slice of run.
func (r *recorder) slicesOf(run string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.slices[run]...)
}

// connsOf returns the recorded connections of a client.
func (r *recorder) connsOf(client string) []*recConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*recConn
	for _, c := range r.conns {
		if c.client() == client {
			out = append(out, c)
		}
	}
	return out
}

// recConn records a connection's messages: what the client sent (Recv on
// the server's side) and the client id the server's welcome gave.
type recConn struct {
	link.Conn
	mu       sync.Mutex
	fromPeer []link.Message
	clientID string
}

func (c *recConn) Recv(ctx context.Context) (link.Message, error) {
	m, err := c.Conn.Recv(ctx)
	if err == nil {
		c.mu.Lock()
		c.fromPeer = append(c.fromPeer, link.Message{Binary: m.Binary, Data: bytes.Clone(m.Data)})
		c.mu.Unlock()
	}
	return m, err
}

func (c *recConn) Send(ctx context.Context, m link.Message) error {
	if !m.Binary {
		if msg, err := wire.ParseMessage(m.Data, 0); err == nil {
			if w, ok := msg.(*wire.Welcome); ok {
				c.mu.Lock()
				c.clientID = w.ClientID
				c.mu.Unlock()
			}
		}
	}
	return c.Conn.Send(ctx, m)
}

// SetReadLimit passes the run's frame limit on to the socket.
func (c *recConn) SetReadLimit(n int64) {
	if l, ok := c.Conn.(interface{ SetReadLimit(int64) }); ok {
		l.SetReadLimit(n)
	}
}

func (c *recConn) client() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

func (c *recConn) sent() []link.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]link.Message(nil), c.fromPeer...)
}

// evalAwait evaluates a JavaScript expression that yields a promise and
// decodes what it resolves to.
func evalAwait[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: evaluating %s: %v", tb.name, js, err)
	}
	return v
}
