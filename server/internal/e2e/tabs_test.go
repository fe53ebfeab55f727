package e2e

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestTabsTrainTogether runs a run with three browser tabs: they train
// rounds together, the global accuracy rises, the dashboard shows the
// clients and the rounds, a page stays responsive while its worker trains,
// and a tab closed in the middle of a round does not stall the run.
func TestTabsTrainTogether(t *testing.T) {
	needBrowser(t)
	e := newEnv(t)
	const rounds = 6
	run, join := e.createRun(map[string]any{"name": "e2e: three tabs", "model": "mnist-2nn", "dataset": "mnist",
		"clients": 100, "rounds": rounds, "fraction": 1, "min_clients": 2, "start_clients": 3, "batch": 10, "lr": 0.05,
		"eval_limit": 1000, "round_deadline": "120s"})
	b := browser(t)
	tabs := make([]*tab, 3)
	for i := range tabs {
		tabs[i] = openTab(t, b, fmt.Sprintf("tab%d", i+1), e.srv.URL+join+"&workers=1")
	}

	tabs[0].waitFor("training in round 1", `qflare.state === 'training'`, 60*time.Second)
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
	tabs[0].screenshot("join")
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
	for i := 0; i < 40 && len(lat) < 15; i++ {
		start := time.Now()
		state := evalAwait[string](tb, `new Promise(r => requestAnimationFrame(() => setTimeout(() => r(qflare.state), 0)))`)
		d := time.Since(start)
		if state == "training" {
			lat = append(lat, d)
		}
	}
	if len(lat) < 5 {
		t.Fatalf("only %d responsiveness samples during training; want at least 5 (training too short?)", len(lat))
	}
	slices.Sort(lat)
	t.Logf("main-thread round trips during training (%d samples): median %v, max %v", len(lat), lat[len(lat)/2], lat[len(lat)-1])
	if slow := lat[len(lat)*9/10]; slow > 200*time.Millisecond {
		t.Errorf("90th percentile main-thread round trip during training = %v; want < 200ms", slow)
	}
	if lat[len(lat)-1] > time.Second {
		t.Errorf("slowest main-thread round trip during training = %v; want < 1s", lat[len(lat)-1])
	}
}
