package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/server/internal/safetensors"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/wire"
)

// TestFederationOverWebSockets: five headless clients over real WebSockets
// train three rounds; accuracy rises and the store holds every round and
// update.
func TestFederationOverWebSockets(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 3, "clients_per_round": 5, "min_clients": 5})
	stop := ts.runClients(run, 5, 1)
	defer stop()
	waitFor(t, 3*time.Minute, "3 aggregated rounds", func() bool {
		rs := ts.rounds(run.ID)
		return len(rs) == 3 && rs[2].Status == "aggregated"
	})
	rs := ts.rounds(run.ID)
	for i, r := range rs {
		if r.NSelected != 5 || r.NAccepted != 5 || r.ModelVersion != i+1 || r.BytesUp == 0 || r.BytesDown == 0 {
			t.Errorf("round %d = %+v; want 5 selected and accepted, model version %d, bytes both ways", r.Round, r, i+1)
		}
	}
	if !(rs[0].TestAccuracy > 0.5 && rs[2].TestAccuracy > rs[0].TestAccuracy) {
		t.Errorf("test accuracy by round %.4f, %.4f, %.4f; want it above 0.5 and rising", rs[0].TestAccuracy, rs[1].TestAccuracy, rs[2].TestAccuracy)
	}
	for round := 1; round <= 3; round++ {
		if us := ts.updates(run.ID, round); len(us) != 5 {
			t.Errorf("round %d has %d stored updates; want 5", round, len(us))
		}
	}
	var clients []map[string]any
	ts.do("GET", "/api/runs/"+run.ID+"/clients", "", nil, &clients)
	if len(clients) != 5 {
		t.Errorf("GET clients lists %d clients; want 5", len(clients))
	}
	var got runResp
	ts.do("GET", "/api/runs/"+run.ID, "", nil, &got)
	if got.Status != "finished" {
		t.Errorf("run status %q; want finished", got.Status)
	}
	checkModelDownload(t, ts, run.ID)
}

// checkModelDownload fetches the latest model as safetensors and compares it
// with the stored weights, tensor by tensor, under PyTorch's names.
func checkModelDownload(t *testing.T, ts *testServer, run string) {
	t.Helper()
	resp, err := http.Get(ts.URL + "/api/runs/" + run + "/model")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	tensors, meta, err := safetensors.Read(body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET model = %s, parse error %v", resp.Status, err)
	}
	m, err := ts.st.Model(context.Background(), run, -1)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := store.DecodeFloat32s(m.Weights, m.Params)
	names := []string{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}
	off := 0
	for i, tn := range tensors {
		if i >= len(names) || tn.Name != names[i] {
			t.Fatalf("tensor %d is %q; want %q", i, tn.Name, names[min(i, len(names)-1)])
		}
		for j, v := range tn.Data {
			if v != want[off+j] {
				t.Fatalf("%s[%d] = %g; the stored model has %g", tn.Name, j, v, want[off+j])
			}
		}
		off += len(tn.Data)
	}
	if off != len(want) || meta["version"] != strconv.Itoa(m.Version) || fmt.Sprint(tensors[0].Shape) != "[200 784]" {
		t.Errorf("download holds %d values, version %q, fc1 %v; want %d, %d, [200 784]", off, meta["version"], tensors[0].Shape, len(want), m.Version)
	}
}

// TestDroppedClientDoesNotStallRound: a selected client that disconnects
// mid-round stops being waited for; the round closes as soon as the others
// answered, long before its deadline.
func TestDroppedClientDoesNotStallRound(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 2, "clients_per_round": 3, "start_clients": 3, "min_clients": 2,
		"round_deadline": "10m"})
	raw := ts.rawJoin(run, nil)
	stop := ts.runClients(run, 2, 1)
	defer stop()
	raw.roundModel()
	raw.conn.Close() // drops in the middle of round 1
	start := time.Now()
	waitFor(t, 2*time.Minute, "the run to finish", func() bool {
		rs := ts.rounds(run.ID)
		return len(rs) == 2 && rs[1].Status == "aggregated"
	})
	rs := ts.rounds(run.ID)
	if rs[0].NSelected != 3 || rs[0].NAccepted != 2 {
		t.Errorf("round 1: %d selected, %d accepted; want 3 and 2", rs[0].NSelected, rs[0].NAccepted)
	}
	if d := time.Since(start); d > 5*time.Minute {
		t.Errorf("rounds took %v; the dropped client stalled them", d)
	}
}

// TestLateUpdateRefused: an update for a round that already closed gets a
// "late" rejection with a reason, is recorded, and the run carries on.
func TestLateUpdateRefused(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 2, "clients_per_round": 2, "start_clients": 2, "min_clients": 1,
		"round_deadline": "3s"})
	raw := ts.rawJoin(run, nil)
	stop := ts.runClients(run, 1, 1)
	defer stop()
	rs, w := raw.roundModel()
	end := nextOf[*wire.RoundEnd](raw) // the deadline passes without our update
	if end.Round != rs.Round {
		t.Fatalf("round_end for round %d; want %d", end.Round, rs.Round)
	}
	raw.sendBinary(raw.updateFrame(rs, w, nil))
	rej := nextOf[*wire.Rejected](raw)
	if rej.Code != wire.CodeLate || !strings.Contains(rej.Reason, "late") {
		t.Errorf("late update answered %+v; want code %q with a reason saying it is late", rej, wire.CodeLate)
	}
	waitFor(t, 2*time.Minute, "round 2 to be aggregated", func() bool {
		rs := ts.rounds(run.ID)
		return len(rs) >= 2 && rs[len(rs)-1].Status == "aggregated"
	})
	found := false
	for _, u := range ts.updates(run.ID, rs.Round) {
		found = found || (u.ClientID == raw.welcome.ClientID && !u.Accepted && u.Code == wire.CodeLate)
	}
	if !found {
		t.Errorf("the late update is not recorded as rejected in round %d", rs.Round)
	}
}

// TestReconnectKeepsIdentity: a client that comes back with its id keeps its
// id and data slice and is not counted twice.
func TestReconnectKeepsIdentity(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 1, "min_clients": 5})
	first := ts.rawJoin(run, nil)
	first.conn.Close()
	again := ts.rawJoin(run, first)
	if again.welcome.ClientID != first.welcome.ClientID || again.welcome.Slice.Index != first.welcome.Slice.Index {
		t.Errorf("reconnect got id %s slice %d; want %s slice %d", again.welcome.ClientID, again.welcome.Slice.Index,
			first.welcome.ClientID, first.welcome.Slice.Index)
	}
	// A second connection with the same id replaces the first.
	third := ts.rawJoin(run, first)
	if bye := nextOf[*wire.Bye](again); !strings.Contains(bye.Reason, "replaced") {
		t.Errorf("older connection told %q; want it replaced", bye.Reason)
	}
	_ = third
	var clients []map[string]any
	ts.do("GET", "/api/runs/"+run.ID+"/clients", "", nil, &clients)
	if len(clients) != 1 {
		t.Errorf("the run lists %d clients; want 1", len(clients))
	}
}

// TestBadInputIsRejectedAndRunContinues sends one kind of bad input per
// client; each gets a readable reason, and the round and the run complete
// afterwards. Frames that are malformed, or not for this run, are refused
// whatever the client; the checks that need a decode are made only for a
// client that holds the round's task (an unselected client's update is
// refused before it is decoded), so those clients are selected: the round
// selects every client that is there when it starts.
func TestBadInputIsRejectedAndRunContinues(t *testing.T) {
	ts := newTestServer(t)
	type badCase struct {
		name, code, reason string
		frame              func(rs *wire.RoundStart, w []float32) []byte
	}
	header := func(run string, rs *wire.RoundStart, n int, kv ...any) map[string]any {
		h := map[string]any{"kind": "update", "run": run, "round": rs.Round, "model_version": rs.ModelVersion,
			"codec": "float32+zstd", "params": n, "samples": 600}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i].(string)] = kv[i+1]
		}
		return h
	}
	// A float32 payload (no zstd) with one NaN written into it by hand; the
	// encoder itself refuses to produce one.
	plainNaN := func(w []float32) []byte {
		plain := make([]byte, 4*len(w))
		for i, v := range w {
			binary.LittleEndian.PutUint32(plain[4*i:], math.Float32bits(v))
		}
		binary.LittleEndian.PutUint32(plain[4*123:], math.Float32bits(float32(math.NaN())))
		return plain
	}
	var run runResp
	var rc0 *rawClient // any client: frames are built from its model
	valid := func(rs *wire.RoundStart, w []float32) []byte { return rc0.updateFrame(rs, w, nil) }
	payload := func(rs *wire.RoundStart, w []float32) []byte {
		_, p, _ := wire.ParseFrame(valid(rs, w), wire.DefaultLimits())
		return p
	}
	decodeCases := []badCase{
		{"wrong parameter count", wire.CodeShape, "parameters", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, 1000), payload(rs, w))
		}},
		{"no samples", wire.CodeBadFrame, "sample", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, len(w), "samples", 0), payload(rs, w))
		}},
		{"absurd sample count", wire.CodeBadFrame, "sample", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, len(w), "samples", 1<<30), payload(rs, w))
		}},
		{"unknown codec", wire.CodeBadFrame, "stage", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, len(w), "codec", "float33+gzip"), payload(rs, w))
		}},
		{"not finite", wire.CodeNotFinite, "finite", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, len(w), "codec", "float32"), plainNaN(w))
		}},
		{"payload of the wrong size", wire.CodeBadFrame, "truncated", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, len(w), "codec", "float32"), plainNaN(w)[:4*len(w)/3])
		}},
		{"corrupt zstd", wire.CodeBadFrame, "zstd", func(rs *wire.RoundStart, w []float32) []byte {
			p := payload(rs, w)
			return rawFrame(header(run.ID, rs, len(w)), p[:len(p)/3])
		}},
		{"a weight moved beyond ±65536", wire.CodeNorm, "65536", func(rs *wire.RoundStart, w []float32) []byte {
			far := append([]float32(nil), w...)
			far[7] += 1e38
			return rc0.updateFrame(rs, far, nil)
		}},
	}
	frameCases := []badCase{
		{"garbage", wire.CodeBadFrame, "magic", func(*wire.RoundStart, []float32) []byte { return []byte("this is not a frame at all") }},
		{"wrong version", wire.CodeBadFrame, "version", func(rs *wire.RoundStart, w []float32) []byte {
			return append([]byte{'Q', 'F', 'L', 9}, valid(rs, w)[4:]...)
		}},
		{"truncated", wire.CodeBadFrame, "", func(rs *wire.RoundStart, w []float32) []byte { v := valid(rs, w); return v[:len(v)/2] }},
		{"header length beyond the frame", wire.CodeTooLarge, "", func(rs *wire.RoundStart, w []float32) []byte {
			return append([]byte{'Q', 'F', 'L', 1, 0xff, 0xff, 0xff, 0x7f}, valid(rs, w)[8:]...)
		}},
		{"bad checksum", wire.CodeBadFrame, "checksum", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, len(w), "payload_crc32", 1), payload(rs, w))
		}},
		{"wrong run", wire.CodeBadFrame, "run", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header("run-other", rs, len(w)), payload(rs, w))
		}},
		{"future round", wire.CodeBadFrame, "not started", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, &wire.RoundStart{Round: rs.Round + 5, ModelVersion: rs.ModelVersion}, len(w)), payload(rs, w))
		}},
		{"model frame from a client", wire.CodeBadFrame, "update", func(rs *wire.RoundStart, w []float32) []byte {
			return rawFrame(header(run.ID, rs, len(w), "kind", "model"), payload(rs, w))
		}},
		{"a valid update from a client that was not selected", wire.CodeNotSelected, "not selected", valid},
	}
	run = ts.createRun(map[string]any{"rounds": 2, "fraction": 1, "min_clients": 1, "start_clients": 1 + len(decodeCases),
		"round_deadline": "5m"})
	holder := ts.rawJoin(run, nil)
	rc0 = holder
	selected := make([]*rawClient, len(decodeCases))
	for i := range selected {
		selected[i] = ts.rawJoin(run, nil)
	}
	rs, w := holder.roundModel()
	check := func(t *testing.T, c badCase, rej *wire.Rejected) {
		if rej.Reason == "" || (c.reason != "" && !strings.Contains(strings.ToLower(rej.Reason), c.reason)) {
			t.Errorf("rejected with %q; want a reason mentioning %q", rej.Reason, c.reason)
		}
		if rej.Code != c.code {
			t.Errorf("code %q (reason %q); want %q", rej.Code, rej.Reason, c.code)
		}
	}
	for i, c := range decodeCases {
		t.Run(c.name, func(t *testing.T) {
			bad := selected[i]
			brs, bw := bad.roundModel()
			bad.sendBinary(c.frame(brs, bw))
			check(t, c, nextOf[*wire.Rejected](bad))
			// A second update in the round is refused before any decode.
			bad.sendBinary(valid(brs, bw))
			if rej := nextOf[*wire.Rejected](bad); rej.Code != wire.CodeDuplicate && rej.Code != wire.CodeLate {
				t.Errorf("second update of the round answered %+v; want it refused as a duplicate", rej)
			}
			bad.conn.Close()
		})
	}
	for _, c := range frameCases {
		t.Run(c.name, func(t *testing.T) {
			bad := ts.rawJoin(run, nil) // joins during round 1: not selected
			nextOf[*wire.Wait](bad)
			bad.sendBinary(c.frame(rs, w))
			check(t, c, nextOf[*wire.Rejected](bad))
			bad.conn.Close()
		})
	}
	// Garbage control messages: a readable bye, then the connection closes.
	bad := ts.rawJoin(run, nil)
	bad.conn.Send(t.Context(), linkText(`{"type":"progress","round":"one"}`))
	if bye := nextOf[*wire.Bye](bad); !strings.Contains(bye.Reason, "bad message") {
		t.Errorf("garbage message answered with bye %q; want a reason", bye.Reason)
	}
	// The run carries on: the holder's valid update is accepted and closes
	// the round; round 2 follows (with the holder, the only client left).
	waitFor(t, 10*time.Second, "the bad clients to be gone", func() bool {
		var r struct{ Live struct{ Connected int } }
		ts.do("GET", "/api/runs/"+run.ID, "", nil, &r)
		return r.Live.Connected == 1
	})
	holder.sendBinary(valid(rs, w))
	if acc := nextOf[*wire.Accepted](holder); acc.Round != rs.Round {
		t.Errorf("valid update accepted for round %d; want %d", acc.Round, rs.Round)
	}
	rs2, w2 := holder.roundModel()
	holder.sendBinary(holder.updateFrame(rs2, w2, nil))
	nextOf[*wire.Accepted](holder)
	waitFor(t, time.Minute, "the run to finish", func() bool {
		var r runResp
		ts.do("GET", "/api/runs/"+run.ID, "", nil, &r)
		return r.Status == "finished"
	})
	rejected := 0
	for _, u := range ts.updates(run.ID, rs.Round) {
		if !u.Accepted {
			rejected++
		}
	}
	// Each bad client's update, plus its refused second one.
	if want := 2*len(decodeCases) + len(frameCases); rejected != want {
		t.Errorf("round %d records %d rejected updates; want %d", rs.Round, rejected, want)
	}
}

// TestRESTErrors: bad requests get 4xx with a JSON error.
func TestRESTErrors(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"rounds": 1})
	cases := []struct {
		method, path, token string
		body                any
		want                int
		msg                 string
	}{
		{"POST", "/api/runs", "", map[string]any{}, http.StatusUnauthorized, "admin token"},
		{"POST", "/api/runs", "wrong", map[string]any{}, http.StatusUnauthorized, "admin token"},
		{"POST", "/api/runs", adminToken, map[string]any{"model": "resnet"}, http.StatusBadRequest, "unknown model"},
		{"POST", "/api/runs", adminToken, map[string]any{"rounds": -1}, http.StatusBadRequest, "rounds"},
		{"POST", "/api/runs", adminToken, map[string]any{"partition": "dirichlet:-1"}, http.StatusBadRequest, "partition"},
		{"POST", "/api/runs", adminToken, map[string]any{"codec": "float33"}, http.StatusBadRequest, "codec"},
		{"POST", "/api/runs", adminToken, map[string]any{"learning_rate": 0.1}, http.StatusBadRequest, "unknown field"},
		{"GET", "/api/runs/run-nope", "", nil, http.StatusNotFound, "not found"},
		{"GET", "/api/runs/" + run.ID + "/model?version=x", "", nil, http.StatusBadRequest, "version"},
		{"GET", "/api/runs/" + run.ID + "/model?version=99", "", nil, http.StatusNotFound, "not found"},
		{"GET", "/api/runs/" + run.ID + "/updates?round=0", "", nil, http.StatusBadRequest, "round"},
		{"GET", "/api/runs/" + run.ID + "/slice?client=c-x&token=bad", "", nil, http.StatusForbidden, "token"},
		{"POST", "/api/runs/" + run.ID + "/stop", "", nil, http.StatusUnauthorized, "admin token"},
		{"GET", "/api/nothing", "", nil, http.StatusNotFound, "no API endpoint"},
	}
	for _, c := range cases {
		var e struct{ Error string }
		if got := ts.do(c.method, c.path, c.token, c.body, &e); got != c.want || !strings.Contains(e.Error, c.msg) {
			t.Errorf("%s %s = %d %q; want %d mentioning %q", c.method, c.path, got, e.Error, c.want, c.msg)
		}
	}
	var r runResp
	if code := ts.do("POST", "/api/runs/"+run.ID+"/stop", adminToken, nil, &r); code != http.StatusOK || r.Status != "stopped" {
		t.Errorf("stop = %d, status %q; want 200 stopped", code, r.Status)
	}
	if code := ts.do("POST", "/api/runs/"+run.ID+"/stop", adminToken, nil, nil); code != http.StatusNotFound && code != http.StatusConflict {
		t.Errorf("stopping a stopped run = %d; want 404 or 409", code)
	}
	_ = bytes.MinRead
}

// TestDivergedModelDoesNotStopTheServer: a client whose (finite, in range)
// update blows the model up makes the evaluation overflow; the server
// reports the diverged model, keeps serving, and the run goes on.
func TestDivergedModelDoesNotStopTheServer(t *testing.T) {
	ts := newTestServer(t)
	run := ts.createRun(map[string]any{"model": "mlp:16", "rounds": 2, "clients_per_round": 1, "min_clients": 1})
	raw := ts.rawJoin(run, nil)
	for round := 1; round <= 2; round++ {
		rs, w := raw.roundModel()
		huge := make([]float32, len(w)) // every weight moved by 60000: the largest step an update may take
		for i := range huge {
			huge[i] = w[i] + 60000
		}
		raw.sendBinary(raw.updateFrame(rs, huge, nil))
		nextOf[*wire.Accepted](raw)
		end := nextOf[*wire.RoundEnd](raw)
		if end.TestLoss < 1e5 || end.TestLoss > 1e30 {
			t.Errorf("round %d: reported test loss %g; want the diverged model's huge loss, capped at 1e30", round, end.TestLoss)
		}
	}
	nextOf[*wire.RunEnd](raw)
	waitFor(t, 10*time.Second, "the run to finish", func() bool {
		var r runResp
		ts.do("GET", "/api/runs/"+run.ID, "", nil, &r)
		return r.Status == "finished"
	})
}
