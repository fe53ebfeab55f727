package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/qflare/qflare/shared/nn"
)

// TestTabsTrainTogether runs a run with three browser tabs: they train
// rounds together, the global accuracy rises, the dashboard shows the
// clients and the rounds, a page stays responsive while its worker trains,
// and a tab closed in the middle of a round does not stall the run.
func TestTabsTrainTogether(t *testing.T) {
	needBrowser(t)
	e := newEnv(t)
	const rounds = 8
	run, join := e.createRun(map[string]any{"name": "e2e: three tabs", "model": "mnist-2nn", "dataset": "mnist",
		"clients": 100, "rounds": rounds, "fraction": 1, "min_clients": 2, "start_clients": 3, "batch": 10, "lr": 0.05,
		"eval_limit": 1000, "round_deadline": "30m"}) // far beyond any wait below: a stalled round would fail the test
	b := browser(t)
	tabs := make([]*tab, 3)
	for i := range tabs {
		// The first tab trains at full speed, and its page's responsiveness
		// is what is measured. The other two train at a quarter of their
		// speed (sleeping the rest, as a slow device's tab does): three
		// workers at full tilt on two cores, beside the server, starve
		// every renderer's main thread, and the measure would be of the
		// machine (a 90th percentile of 242 ms, median 38 ms, 1 run in 4
		// under -race).
		slow := ""
		if i > 0 {
			slow = "&slowdown=4"
		}
		tabs[i] = openTab(t, b, fmt.Sprintf("tab%d", i+1), join+"&workers=1"+slow)
	}

	tabs[0].waitFor("training", `qflare.state === 'training'`, 60*time.Second)
	checkResponsive(t, tabs[0])

	waitUntil(t, "two rounds aggregated", 90*time.Second, func() bool { return e.aggregated(run) >= 2 })
	ids := make([]string, len(tabs))
	for i, tb := range tabs {
		for r := 1; r <= 2; r++ {
			tb.waitFor(fmt.Sprintf("round %d accepted", r), fmt.Sprintf(`(qflare.rounds[%d] || {}).result === 'accepted'`, r), 20*time.Second)
		}
		ids[i] = eval[string](tb, `qflare.clientId`)
	}
	slices.Sort(ids)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("client ids of the three tabs = %v; want three different ids", ids)
	}

	// Close a tab while it trains: the round must close without it, long
	// before the deadline, and the next round must run with the others.
	victim := tabs[2]
	victim.waitFor("training in round 3 or later", `qflare.state === 'training' && qflare.round >= 3`, 60*time.Second)
	r := eval[int](victim, `qflare.round`)
	if r >= rounds {
		t.Fatalf("the victim tab trains round %d, the last one; no next round to check", r)
	}
	victim.cancel()
	closed := time.Now()
	waitUntil(t, fmt.Sprintf("round %d aggregated after its tab closed", r), 30*time.Second, func() bool { return e.aggregated(run) >= r })
	waitUntil(t, fmt.Sprintf("round %d aggregated with two tabs", r+1), 30*time.Second, func() bool { return e.aggregated(run) >= r+1 })
	t.Logf("rounds %d and %d aggregated %v after the tab closed", r, r+1, time.Since(closed).Round(time.Millisecond))
	rs := e.rounds(run)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Round < rs[j].Round })
	if got := rs[r].NAccepted; got != 2 {
		t.Errorf("round %d accepted %d updates; want 2 (the two open tabs)", r+1, got)
	}
	var accs []float64
	for _, x := range rs {
		if x.Status == "aggregated" {
			accs = append(accs, x.TestAccuracy)
		}
	}
	t.Logf("global test accuracy per round: %.3f", accs)
	if len(accs) < 2 || accs[len(accs)-1] <= accs[0] || accs[0] < 0.3 {
		t.Errorf("global accuracy per round %.3f; want it to rise from a first round above 0.3", accs)
	}

	dash := openTab(t, b, "dashboard", e.srv.URL+"/dashboard#admin="+adminToken)
	dash.waitFor("three clients and the rounds on the dashboard",
		fmt.Sprintf(`document.querySelectorAll('#clients tbody tr[data-client]').length === 3 && document.querySelectorAll('#timeline .r.ok').length >= %d`, r+1),
		20*time.Second)
	shown := eval[[]string](dash, `[...document.querySelectorAll('#clients tbody tr[data-client]')].map(e => e.dataset.client).sort()`)
	if !slices.Equal(shown, ids) {
		t.Errorf("dashboard lists clients %v; want the tabs' %v", shown, ids)
	}
	if token := eval[string](dash, `location.hash`); token != "" {
		t.Errorf("dashboard URL keeps the fragment %q; want the admin token taken off the address bar", token)
	}
	dash.screenshot("dashboard")
	if _, err := chromedp.Call(tabs[0].ctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	tabs[0].screenshot("join") // the phone layout: TestPhoneAndPresenter

	startAndStopFromDashboard(t, e, dash)
}

// startAndStopFromDashboard starts a run with the dashboard's form, leaving
// batch and learning rate to the model's defaults that the form shows, and
// stops it with its Stop button.
func startAndStopFromDashboard(t *testing.T, e *env, dash *tab) {
	t.Helper()
	go func() { // accept the "Stop run?" confirmation
		for _, err := range chromedp.Events(dash.ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			chromedp.Call(dash.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	const name = "e2e: started from the dashboard"
	if err := chromedp.Do(dash.ctx,
		chromedp.Click(chromedp.CSS("#new-run summary")),
		chromedp.SetValue(chromedp.CSS(`#run-form input[name=name]`), name),
		chromedp.SetValue(chromedp.CSS(`#run-form input[name=rounds]`), "3"),
		chromedp.Click(chromedp.CSS(`#run-form button[type=submit]`)),
	); err != nil {
		t.Fatal(err)
	}
	dash.waitFor("the new run selected", fmt.Sprintf(`qflareDash.run && qflareDash.run.name === %q && qflareDash.feed === 'live'`, name), 20*time.Second)
	def := nn.DefaultsFor("mnist-2nn") // the form's first model
	if ph := eval[string](dash, `document.querySelector('#run-form input[name=lr]').placeholder`); !strings.HasPrefix(ph, fmt.Sprint(def.LR)+" ") {
		t.Errorf("learning rate placeholder %q; want it to show mnist-2nn's default %g", ph, def.LR)
	}
	id := eval[string](dash, `qflareDash.runId`)
	var got struct {
		Name   string `json:"name"`
		Config struct {
			Rounds int     `json:"rounds"`
			LR     float64 `json:"lr"`
			Batch  int     `json:"batch"`
		} `json:"config"`
	}
	e.api("GET", "/api/runs/"+id, nil, &got)
	if got.Name != name || got.Config.Rounds != 3 || got.Config.LR != def.LR || got.Config.Batch != def.Batch {
		t.Errorf("run created by the dashboard = %+v; want name %q, 3 rounds, lr %g and batch %d", got, name, def.LR, def.Batch)
	}
	if err := chromedp.Do(dash.ctx, chromedp.Click(chromedp.ID("stop"))); err != nil {
		t.Fatal(err)
	}
	dash.waitFor("the run stopped", `document.getElementById('status').textContent === 'stopped'`, 20*time.Second)
}

// checkResponsive measures, while the tab's worker trains, how long the page
// takes to answer: an evaluation that waits for an animation frame and a
// timer. Training runs in Web Workers, so the main thread stays free.
func checkResponsive(t *testing.T, tb *tab) {
	t.Helper()
	if _, err := chromedp.Call(tb.ctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	for end := time.Now().Add(30 * time.Second); len(lat) < 15 && time.Now().Before(end); {
		start := time.Now()
		state := evalAwait[string](tb, `new Promise(r => requestAnimationFrame(() => setTimeout(() => r(qflare.state), 0)))`)
		d := time.Since(start)
		if state == "training" {
			lat = append(lat, d)
		}
	}
	if len(lat) < 5 {
		t.Fatalf("only %d responsiveness samples during training in 30s; want at least 5", len(lat))
	}
	slices.Sort(lat)
	t.Logf("main-thread round trips during training (%d samples): median %v, max %v", len(lat), lat[len(lat)/2], lat[len(lat)-1])
	// The race detector's server, in this process, takes several times
	// its usual share of the two cores the browser runs on.
	limit := 200 * time.Millisecond
	if raceEnabled {
		limit = 300 * time.Millisecond
	}
	if slow := lat[len(lat)*9/10]; slow > limit {
		t.Errorf("90th percentile main-thread round trip during training = %v; want < %v", slow, limit)
	}
	if lat[len(lat)-1] > time.Second {
		t.Errorf("slowest main-thread round trip during training = %v; want < 1s", lat[len(lat)-1])
	}
}

// TestPublicRunFromRoot opens the server's root URL, which joins the public
// run without a join link, trains a round on the server's data, switches to
// the person's own files (same client, no reload), and stops when the run
// ends.
func TestPublicRunFromRoot(t *testing.T) {
	needBrowser(t)
	e := newEnv(t)
	e.createRun(map[string]any{"name": "e2e: public", "model": "mnist-2nn", "dataset": "mnist", "clients": 100,
		"rounds": 3, "fraction": 1, "min_clients": 1, "batch": 10, "eval_limit": 500, "public": true})
	images, labels := writeIDX(t, ownSubset(t))
	b := browser(t)
	tb := openTab(t, b, "root", e.srv.URL+"/?workers=2")
	tb.waitFor("round 1 accepted", `(qflare.rounds[1] || {}).result === 'accepted' && !qflare.local`, 60*time.Second)
	id := eval[string](tb, `qflare.clientId`)
	if err := chromedp.Do(tb.ctx, chromedp.SetUploadFiles(chromedp.ID("own-idx"), []string{images, labels})); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("the run's end", `qflare.stopped && qflare.stopped.code === 'run_end'`, 60*time.Second)
	if got := eval[bool](tb, `qflare.local && qflare.samples === 200`); !got {
		t.Errorf("the tab did not switch to its own 200 samples")
	}
	if got := eval[string](tb, `qflare.clientId`); got != id {
		t.Errorf("client id after switching to own data = %q; want %q", got, id)
	}
	if got := eval[string](tb, `(qflare.rounds[3] || {}).result || ''`); got != "accepted" {
		t.Errorf("round 3 result on the page = %q; want accepted", got)
	}
	if got := eval[string](tb, `document.getElementById('headline').textContent`); got != "The run is over" {
		t.Errorf("headline = %q; want %q", got, "The run is over")
	}
}
