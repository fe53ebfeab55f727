package e2e

import (
	"context"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/server/edge/workerd"
	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
)

const shardToken = "e2e-shard-token-0123456789"

// staticDir writes the pages with the freshly built client into a folder,
// for workerd's disk service.
func staticDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(os.DirFS(filepath.Join(repoRoot, "www", "static")), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(staticFS, p) // the built file where there is one
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"client.wasm", "client-simd.wasm", "wasm_exec.js"} {
		if b, err := fs.ReadFile(staticFS, name); err == nil {
			os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	return dir
}

// TestEdgeTabJoinsThroughShard: a Chromium tab opens a join link on an
// edge shard's Worker under workerd, not on the server: the page, the
// client and the data slice come through the Worker, the tab's WebSocket
// is held by the shard's Durable Object, and its updates reach the server
// as partials; the tab trains two rounds and hears its updates accepted.
func TestEdgeTabJoinsThroughShard(t *testing.T) {
	needBrowser(t)
	bin, why := workerd.Find(repoRoot)
	if bin == "" {
		t.Skip(why)
	}
	bundle := t.TempDir()
	cmd := exec.Command("sh", "build/edge.sh", bundle)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build/edge.sh: %v\n%s", err, out)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "edge.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := coord.New(coord.Deps{Store: st, Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, "") }})
	srv := httptest.NewServer(api.New(api.Options{Coord: c, AdminToken: adminToken, ShardToken: shardToken}))
	defer func() {
		srv.CloseClientConnections()
		srv.Close()
		c.Close()
		st.Close()
	}()
	logf, _ := os.Create(filepath.Join(t.TempDir(), "workerd.log"))
	sh, err := workerd.Start(ctx, workerd.Options{Bin: bin, Bundle: bundle, Assets: staticDir(t), Name: "e2e",
		Origin: srv.URL, Token: shardToken, Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sh.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("workerd's log:\n%s", b)
		}
	}()
	if err := sh.WaitLinked(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, coord.Config{Name: "e2e: a tab through an edge shard", Model: "mnist-2nn", Clients: 100,
		Rounds: 2, Fraction: 1, MinClients: 1, EvalLimit: 1000, RoundDeadline: coord.Duration(30 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	tb := openTab(t, b, "edge tab", sh.URL+api.JoinPath(run.ID(), run.Token())+"&workers=1")
	for r := 1; r <= 2; r++ {
		tb.waitFor("round accepted", `(qflare.rounds[`+string(rune('0'+r))+`] || {}).result === 'accepted'`, 120*time.Second)
	}
	id := eval[string](tb, `qflare.clientId`)
	ups, err := st.Updates(ctx, run.ID(), -1)
	if err != nil || len(ups) != 2 || !ups[0].Accepted || !ups[1].Accepted || ups[0].ClientID != id {
		t.Errorf("stored updates %+v (%v); want the tab's two, accepted", ups, err)
	}
	ps, err := st.Partials(ctx, run.ID(), 0)
	if err != nil || len(ps) < 2 {
		t.Errorf("%d partials stored (%v); want the tab's updates to come as partials, one a round", len(ps), err)
	}
	cl, err := st.Client(ctx, run.ID(), id)
	if err != nil || cl.Kind != "browser" || !strings.Contains(string(cl.Device), "Chrome") {
		t.Errorf("the tab's client row = %+v, %v; want a browser", cl, err)
	}
	stats, err := sh.Status()
	if err != nil || stats.Folded < 2 {
		t.Errorf("the shard's status = %+v, %v; want the tab's updates folded there", stats, err)
	}
	t.Logf("a Chromium tab trained %d rounds through the edge shard (%d updates stored, %d partials)", 2, len(ups), len(ps))
}
