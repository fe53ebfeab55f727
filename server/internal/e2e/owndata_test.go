package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/wire"
)

const ownSamples = 200

// TestOwnDataStaysInTab gives a tab its own MNIST files through the page's
// file input and checks that it trains and uploads while nothing of the
// data reaches the server: no slice download, and every message the tab
// sent is protocol (hello, progress, bye) or a model update that decodes to
// exactly the model's parameters and contains none of the images. It also
// drops the tab's connection (the tab comes back with its client id) and
// presses Leave (the tab says bye). The run has more rounds than the test
// waits for, so it is still on when Leave is pressed.
func TestOwnDataStaysInTab(t *testing.T) {
	needBrowser(t)
	e := newEnv(t)
	cfg := map[string]any{"name": "e2e: own data", "model": "mnist-2nn", "dataset": "mnist", "clients": 100,
		"rounds": 20, "fraction": 1, "min_clients": 1, "batch": 10, "lr": 0.05, "eval_limit": 1000, "round_deadline": "120s"}
	run, join := e.createRun(cfg)
	own := ownSubset(t)
	images, labels := writeIDX(t, own)

	b := browser(t)
	tb := openTab(t, b, "own", join+"&workers=2&data=own")
	tb.waitFor("the page waiting for files", `qflare.conn === 'not joined'`, 20*time.Second)
	checkFolderDecoding(t, tb)
	if err := chromedp.Do(tb.ctx, chromedp.SetUploadFiles(chromedp.ID("own-idx"), []string{images, labels})); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("training on the own data", fmt.Sprintf(`qflare.local === true && qflare.samples === %d`, ownSamples), 30*time.Second)
	tb.waitFor("round 1 accepted", `(qflare.rounds[1] || {}).result === 'accepted'`, 60*time.Second)
	id := eval[string](tb, `qflare.clientId`)

	// Drop the connection from the server's side: the tab reconnects with
	// its id and keeps training.
	conns := e.rec.connsOf(id)
	if len(conns) != 1 {
		t.Fatalf("client %s has %d connections; want 1", id, len(conns))
	}
	conns[0].Conn.Close()
	waitUntil(t, "the tab reconnecting", 20*time.Second, func() bool { return len(e.rec.connsOf(id)) == 2 })
	tb.waitFor("round 3 accepted after reconnecting", `(qflare.rounds[3] || {}).result === 'accepted'`, 60*time.Second)
	if got := eval[string](tb, `qflare.clientId`); got != id {
		t.Errorf("client id after reconnecting = %q; want %q", got, id)
	}
	tb.screenshot("join-own-data")

	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.ID("leave"))); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("the tab leaving", `qflare.stopped && qflare.stopped.code === 'left'`, 10*time.Second)

	if got := e.rec.slicesOf(run); len(got) != 0 {
		t.Errorf("slice downloads for the run = %v; want none (the tab has its own data)", got)
	}
	if got := e.rec.browserWrites(); len(got) != 0 {
		t.Errorf("the browser sent %v; want no request that carries a body", got)
	}
	var c coord.Config
	c.Model, c.Dataset = "mnist-2nn", "mnist"
	model, err := coord.NewModel(c)
	if err != nil {
		t.Fatal(err)
	}
	updates := 0
	for i, conn := range e.rec.connsOf(id) {
		msgs := conn.sent()
		updates += checkProtocolOnly(t, msgs, model.TensorShapes(), model.NumParams(), own)
		if i == 0 && !strings.Contains(string(msgs[0].Data), `"client_id":""`) {
			t.Errorf("first connection's hello = %s; want one without a client id", msgs[0].Data)
		}
		if i == 1 && !strings.Contains(string(msgs[0].Data), `"client_id":"`+id+`"`) {
			t.Errorf("reconnection's hello = %s; want client id %s", msgs[0].Data, id)
		}
	}
	if updates < 2 {
		t.Errorf("the tab sent %d updates; want at least 2 (rounds 1 and 3)", updates)
	}
	// The tab says bye before it closes; a progress report of the training
	// the leave cancels may cross it, and the server may read it a moment
	// after the page shows "left".
	saidBye := func() bool {
		for _, m := range e.rec.connsOf(id)[1].sent() {
			if msg, err := wire.ParseMessage(m.Data, 0); err == nil && msg.Type() == "bye" {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !saidBye() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !saidBye() {
		last := e.rec.connsOf(id)[1].sent()
		t.Errorf("the tab left without a bye; its last message: %s", last[len(last)-1].Data)
	}
}

// checkProtocolOnly checks that msgs (what a client sent) hold only
// protocol messages and updates of exactly params parameters, none of
// which contains an image of own. It returns the number of updates.
func checkProtocolOnly(t *testing.T, msgs []link.Message, shapes [][]int, params int, own *data.Set) int {
	t.Helper()
	updates := 0
	for i, m := range msgs {
		for j := 0; j < own.Len(); j++ {
			if img := own.Images[j*own.Dim() : (j+1)*own.Dim()]; bytes.Contains(m.Data, img) {
				t.Fatalf("message %d from the client contains image %d of its own data", i, j)
			}
		}
		if !m.Binary {
			msg, err := wire.ParseMessage(m.Data, 0)
			if err != nil {
				t.Errorf("message %d from the client %.200s: %v", i, m.Data, err)
				continue
			}
			if typ := msg.Type(); typ != "hello" && typ != "progress" && typ != "bye" {
				t.Errorf("message %d from the client is a %q; want hello, progress or bye", i, typ)
			}
			continue
		}
		h, payload, err := wire.ParseFrame(m.Data, wire.Limits{MaxParams: params})
		if err != nil {
			t.Errorf("frame %d from the client: %v", i, err)
			continue
		}
		if h.Kind != wire.KindUpdate || h.Params != params || h.Samples != own.Len() {
			t.Errorf("frame %d: kind %s, %d parameters, %d samples; want an update of %d parameters from %d samples",
				i, h.Kind, h.Params, h.Samples, params, own.Len())
		}
		p, err := h.Pipeline()
		if err != nil {
			t.Errorf("frame %d: %v", i, err)
			continue
		}
		zero := make([]float32, params)
		w, err := wire.Decode(p, payload, shapes, zero, make([]float32, params), wire.Limits{MaxParams: params})
		if err != nil || len(w) != params {
			t.Errorf("frame %d: decoding %d payload bytes = %d values, %v; want exactly %d parameters", i, len(payload), len(w), err, params)
		}
		updates++
	}
	return updates
}

// ownSubset returns the first ownSamples MNIST training samples.
func ownSubset(t *testing.T) *data.Set {
	t.Helper()
	train, err := loadData()
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]int, ownSamples)
	for i := range idx {
		idx[i] = 50000 + i
	}
	return train.Subset(idx)
}

// writeIDX writes s as an IDX image file (gzip) and label file (raw).
func writeIDX(t *testing.T, s *data.Set) (images, labels string) {
	t.Helper()
	dir := t.TempDir()
	images, labels = filepath.Join(dir, "my-images-idx3-ubyte.gz"), filepath.Join(dir, "my-labels-idx1-ubyte")
	var img bytes.Buffer
	zw := gzip.NewWriter(&img)
	if err := data.WriteIDX(zw, []int{s.Len(), s.H, s.W}, s.Images); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	var lab bytes.Buffer
	if err := data.WriteIDX(&lab, []int{s.Len()}, s.Labels); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(images, img.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(labels, lab.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return images, labels
}

// folderCheck is what checkFolderDecoding's script returns.
type folderCheck struct {
	N       int       `json:"n"`
	Labels  []int     `json:"labels"`
	Summary string    `json:"summary"`
	Border  []float64 `json:"border"` // mean of each image's border pixels
	Max     []int     `json:"max"`    // brightest pixel of each image
}

// checkFolderDecoding feeds the page's folder reader digits drawn dark on
// light and light on dark, in folders named by label, plus a file that is
// not an image: it must decode the images to 28x28 light-on-dark (inverting
// the light ones), label them by folder and skip the rest.
func checkFolderDecoding(t *testing.T, tb *tab) {
	t.Helper()
	got := evalAwait[folderCheck](tb, `(async () => {
		const draw = async (label, light) => {
			const c = new OffscreenCanvas(60, 44), x = c.getContext('2d');
			x.fillStyle = light ? '#fff' : '#000'; x.fillRect(0, 0, 60, 44);
			x.fillStyle = light ? '#000' : '#fff'; x.font = 'bold 36px sans-serif'; x.fillText(String(label), 20, 36);
			const f = new File([await c.convertToBlob({ type: 'image/png' })], 'd.png', { type: 'image/png' });
			Object.defineProperty(f, 'webkitRelativePath', { value: 'digits/' + label + '/d.png' });
			return f;
		};
		const notes = new File(['not an image'], 'notes.txt', { type: 'text/plain' });
		Object.defineProperty(notes, 'webkitRelativePath', { value: 'digits/notes.txt' });
		const r = await ownData.fromFolder([await draw(3, true), await draw(7, false), await draw(1, true), notes], ownData.shapes.mnist);
		const img = r.own.images, out = { n: r.own.labels.length, labels: [...r.own.labels], summary: r.summary, border: [], max: [] };
		for (let i = 0; i < out.n; i++) {
			const p = img.subarray(i * 784, (i + 1) * 784);
			let b = 0, nb = 0, m = 0;
			for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
				const v = p[y * 28 + x]; m = Math.max(m, v);
				if (x === 0 || y === 0 || x === 27 || y === 27) { b += v; nb++; }
			}
			out.border.push(b / nb); out.max.push(m);
		}
		return out;
	})()`)
	if got.N != 3 || fmt.Sprint(got.Labels) != "[3 7 1]" || !strings.Contains(got.Summary, "1 files skipped") {
		t.Errorf("fromFolder = %d images labelled %v (%q); want 3 images labelled [3 7 1], 1 file skipped", got.N, got.Labels, got.Summary)
	}
	for i := range got.Border {
		if got.Border[i] > 30 || got.Max[i] < 200 {
			t.Errorf("image %d: border mean %.0f, brightest %d; want a light digit on a dark background", i, got.Border[i], got.Max[i])
		}
	}
}
