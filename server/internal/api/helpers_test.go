package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
	"github.com/qflare/qflare/wasmclient/headless"
)

const adminToken = "test-admin-token"

// testServer is a real server (store on a file, coordinator, HTTP API) on
// an httptest listener.
type testServer struct {
	t   *testing.T
	URL string
	c   *coord.Coordinator
	st  *store.Store
}

func newTestServer(t *testing.T) *testServer { return newTestServerWith(t, nil) }

// newTestServerWith is newTestServer with options adjusted by opt.
func newTestServerWith(t *testing.T, opt func(*api.Options)) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "qflare.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := coord.New(coord.Deps{Store: st,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	o := api.Options{Coord: c, AdminToken: adminToken}
	if opt != nil {
		opt(&o)
	}
	srv := httptest.NewServer(api.New(o))
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		st.Close()
	})
	return &testServer{t: t, URL: srv.URL, c: c, st: st}
}

// do sends a request and decodes a JSON answer into out (when not nil),
// returning the status.
func (ts *testServer) do(method, path, token string, body any, out any) int {
	ts.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, ts.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			ts.t.Fatalf("%s %s: decoding answer: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

type runResp struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	JoinURL string `json:"join_url"`
	Error   string `json:"error"`
}

func (r runResp) token() string {
	_, tok, _ := strings.Cut(r.JoinURL, "token=")
	return tok
}

// createRun creates a run with small, fast defaults merged with cfg.
func (ts *testServer) createRun(cfg map[string]any) runResp {
	ts.t.Helper()
	full := map[string]any{"model": "mnist-2nn", "dataset": "mnist", "clients": 100, "batch": 20, "lr": 0.05,
		"eval_limit": 1000, "round_deadline": "60s", "seed": 7}
	for k, v := range cfg {
		full[k] = v
	}
	var r runResp
	if code := ts.do("POST", "/api/runs", adminToken, full, &r); code != http.StatusCreated {
		ts.t.Fatalf("POST /api/runs = %d (%s); want 201", code, r.Error)
	}
	return r
}

type roundResp struct {
	Round        int     `json:"round"`
	Status       string  `json:"status"`
	NSelected    int     `json:"n_selected"`
	NReceived    int     `json:"n_received"`
	NAccepted    int     `json:"n_accepted"`
	TestAccuracy float64 `json:"test_accuracy"`
	ModelVersion int     `json:"model_version"`
	BytesUp      int64   `json:"bytes_up"`
	BytesDown    int64   `json:"bytes_down"`
}

func (ts *testServer) rounds(run string) []roundResp {
	ts.t.Helper()
	var rs []roundResp
	ts.do("GET", "/api/runs/"+run+"/rounds", "", nil, &rs)
	return rs
}

type updateResp struct {
	ID       int64  `json:"id"`
	Round    int    `json:"round"`
	ClientID string `json:"client_id"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason"`
	Code     string `json:"code"`
}

func (ts *testServer) updates(run string, round int) []updateResp {
	ts.t.Helper()
	var us []updateResp
	ts.do("GET", fmt.Sprintf("/api/runs/%s/updates?round=%d", run, round), "", nil, &us)
	return us
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runClients starts n headless clients (the same code as the wasmclient
// command) and returns a function that stops them and waits.
func (ts *testServer) runClients(run runResp, n int, slowdown float64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- headless.Run(ctx, &headless.Options{Server: ts.URL, Run: run.ID, Token: run.token(), Clients: n,
			SlowMin: slowdown, SlowMax: slowdown, Seed: 1})
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			ts.t.Errorf("headless clients: %v", err)
		}
	}
}

// rawClient speaks the protocol by hand, to send what a real client would
// not.
type rawClient struct {
	t       *testing.T
	conn    link.Conn
	welcome *wire.Welcome
	secret  string
	model   *nn.Model
}

// rawJoin joins run as a newcomer, or, with as, as that client again (its
// id and secret).
func (ts *testServer) rawJoin(run runResp, as *rawClient) *rawClient {
	t := ts.t
	t.Helper()
	conn, err := headless.Dial(context.Background(), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{t: t, conn: conn}
	t.Cleanup(func() { conn.Close() })
	h := &wire.Hello{V: wire.Version, Run: run.ID, Token: run.token(),
		Device: wire.Device{Kind: wire.DeviceHeadless, UserAgent: "raw test client"}}
	if as != nil {
		h.ClientID, h.Secret = as.welcome.ClientID, as.secret
	}
	rc.send(h)
	w, ok := rc.next().(*wire.Welcome)
	if !ok {
		t.Fatalf("first answer is not a welcome")
	}
	rc.welcome, rc.secret = w, w.Secret
	if w.Secret == "" && as != nil {
		rc.secret = as.secret
	}
	rc.model, err = nn.New(w.Run.Model, nn.Shape{H: 28, W: 28, C: 1}, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawClient) send(m wire.Message) {
	rc.t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		rc.t.Fatal(err)
	}
	if err := rc.conn.Send(context.Background(), link.Message{Data: b}); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) sendBinary(b []byte) {
	rc.t.Helper()
	if err := rc.conn.Send(context.Background(), link.Message{Binary: true, Data: b}); err != nil {
		rc.t.Fatal(err)
	}
}

// next returns the next message: a wire.Message, or []byte for a frame.
func (rc *rawClient) next() any {
	rc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := rc.conn.Recv(ctx)
	if err != nil {
		rc.t.Fatalf("raw client: %v", err)
	}
	if m.Binary {
		return m.Data
	}
	msg, err := wire.ParseMessage(m.Data, wire.MaxMessageBytes)
	if err != nil {
		rc.t.Fatalf("raw client: bad message %q: %v", m.Data, err)
	}
	return msg
}

// nextOf skips messages until one of type T arrives.
func nextOf[T any](rc *rawClient) T {
	rc.t.Helper()
	for {
		if v, ok := rc.next().(T); ok {
			return v
		}
	}
}

// roundModel waits for a round_start and its model frame, and returns the
// round and the decoded global weights.
func (rc *rawClient) roundModel() (*wire.RoundStart, []float32) {
	rc.t.Helper()
	rs := nextOf[*wire.RoundStart](rc)
	frame := nextOf[[]byte](rc)
	h, payload, err := wire.ParseFrame(frame, wire.DefaultLimits())
	if err != nil {
		rc.t.Fatal(err)
	}
	p, _ := h.Pipeline()
	w, err := wire.Decode(p, payload, rc.model.TensorShapes(), nil, nil, wire.DefaultLimits())
	if err != nil {
		rc.t.Fatal(err)
	}
	return rs, w
}

// updateFrame builds a well-formed update (weights w, float32+zstd) that
// mutate can spoil.
func (rc *rawClient) updateFrame(rs *wire.RoundStart, w []float32, mutate func(h *wire.FrameHeader, payload []byte) []byte) []byte {
	rc.t.Helper()
	p, _ := wire.ParsePipeline("float32+zstd")
	payload, err := wire.NewEncoder(p, rc.model.TensorShapes(), 1).Encode(nil, w, nil)
	if err != nil {
		rc.t.Fatal(err)
	}
	h := &wire.FrameHeader{Kind: wire.KindUpdate, Run: rc.welcome.Run.ID, Round: rs.Round, ModelVersion: rs.ModelVersion,
		Codec: p.String(), Params: len(w), Samples: 600}
	if mutate != nil {
		payload = mutate(h, payload)
	}
	f, err := wire.AppendFrame(nil, h, payload)
	if err != nil {
		rc.t.Fatal(err)
	}
	return f
}

// rawFrame builds frame bytes without any validation, for hostile cases.
func rawFrame(h map[string]any, payload []byte) []byte {
	if _, ok := h["payload_crc32"]; !ok {
		h["payload_crc32"] = crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli))
	}
	hb, _ := json.Marshal(h)
	b := []byte{'Q', 'F', 'L', wire.Version}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hb)))
	return append(append(b, hb...), payload...)
}

func linkText(s string) link.Message { return link.Message{Data: []byte(s)} }
