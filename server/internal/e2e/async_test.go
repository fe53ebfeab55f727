package e2e

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestAsyncProfiles: three tabs emulating a desktop, a laptop and a
// low-end phone train an async (FedBuff) run to its end. The phone's
// updates arrive more steps stale than the desktop's and it contributes
// fewer of them; the phone's page shows the version it trains and each
// update's staleness, as the server stored it; the dashboard draws one
// timeline lane per client, coloured by profile, live and again from the
// stored updates after the run, with participation per profile.
func TestAsyncProfiles(t *testing.T) {
	needBrowser(t)
	start := time.Now()
	e := newEnv(t)
	// 100 samples a tab: the desktop trains a task in a fraction of a
	// second even on a busy machine, while the phone always waits out its
	// upload (1.2 s for mnist-2nn at 5.5 Mbit/s).
	const steps = 6
	run, join := e.createRun(map[string]any{"name": "e2e: async profiles", "model": "mnist-2nn", "dataset": "mnist",
		"clients": 600, "rounds": steps, "mode": "async", "buffer": 3, "concurrency": 3, "start_clients": 3,
		"batch": 20, "lr": 0.05, "eval_limit": 300, "round_deadline": "60s"})
	b := browser(t)
	dash := openTab(t, b, "dashboard", e.srv.URL+"/dashboard?run="+run+"#admin="+adminToken)
	profiles := []string{"desktop", "laptop", "phone-low"}
	tabs := map[string]*tab{}
	for _, p := range profiles {
		tabs[p] = openTab(t, b, p, join+"&workers=1&profile="+p)
	}
	dash.waitFor("three live lanes on the dashboard, with tasks in flight",
		`document.querySelectorAll('#lanes .lane[data-client]').length === 3 && document.querySelector('#lanes .task.open')`, 60*time.Second)
	t.Logf("three tabs training %v after the test began", time.Since(start).Round(time.Millisecond))
	if got := eval[string](dash, `document.getElementById('join-url').textContent`); got != join {
		t.Errorf("the dashboard's join link (and QR code) = %q; want %q", got, join)
	}
	waitUntil(t, "the run's end", 90*time.Second, func() bool { return e.runStatus(run) == "finished" })
	t.Logf("%d steps in %v since the test began", steps, time.Since(start).Round(time.Millisecond))

	ids := map[string]string{} // profile → client id
	for p, tb := range tabs {
		ids[p] = eval[string](tb, `qflare.clientId`)
	}
	stale, accepted := e.stalenessByClient(run)
	phone, desktop := ids["phone-low"], ids["desktop"]
	t.Logf("accepted updates' staleness: desktop %v, laptop %v, phone-low %v", stale[desktop], stale[ids["laptop"]], stale[phone])
	if len(stale[phone]) == 0 || len(stale[desktop]) == 0 {
		t.Fatalf("accepted updates: desktop %d, phone-low %d; want both to contribute", len(stale[desktop]), len(stale[phone]))
	}
	if m, d := mean(stale[phone]), mean(stale[desktop]); m <= d {
		t.Errorf("mean staleness of phone-low's updates = %.2f; want more than the desktop's %.2f", m, d)
	}
	if len(stale[phone]) >= len(stale[desktop]) {
		t.Errorf("phone-low contributed %d updates, the desktop %d; want the desktop, which is not held back, to do more", len(stale[phone]), len(stale[desktop]))
	}
	if n := accepted; n < 3*steps {
		t.Errorf("%d accepted updates in %d steps of buffer 3; want at least %d", n, steps, 3*steps)
	}

	// The phone's page: versions and staleness, not rounds, matching what
	// the server stored.
	ph := tabs["phone-low"]
	ph.waitFor("the run's end on the phone's page", `qflare.stopped && qflare.stopped.code === 'run_end'`, 20*time.Second)
	if k := eval[string](ph, `document.getElementById('f-round-k').textContent`); k != "Model version" {
		t.Errorf("the join page labels the run's progress %q; want Model version", k)
	}
	shown := eval[[]int](ph, `qflare.tasks.filter(t => t.result === 'accepted').map(t => t.staleness)`)
	slices.Sort(shown)
	if want := slices.Sorted(slices.Values(stale[phone])); !slices.Equal(shown, want) {
		t.Errorf("the phone's page shows accepted updates %v steps stale; the server stored %v", shown, want)
	}
	said := regexp.MustCompile(`^accepted · \d+ steps? stale$`)
	cells := eval[[]string](ph, `[...document.querySelectorAll('#rounds tbody tr')].map(r => r.lastChild.textContent).filter(s => s.startsWith('accepted'))`)
	if len(cells) == 0 || !said.MatchString(cells[0]) {
		t.Errorf("the phone's task table says %q; want accepted updates with their staleness (\"accepted · 2 steps stale\")", cells)
	}
	if _, err := chromedp.Call(ph.ctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	ph.screenshotOf("join-async", "#rounds-card")

	// The dashboard, live (the feed it followed) and from the stored
	// updates (loaded again).
	for _, how := range []string{"live", "stored"} {
		if how == "stored" {
			dash.cancel()
			dash = openTab(t, b, "dashboard-stored", e.srv.URL+"/dashboard?run="+run+"#admin="+adminToken)
		}
		dash.waitFor(how+": the finished run's lanes", `document.body.classList.contains('async') && qflareDash.run && qflareDash.run.status === 'finished' &&
			document.querySelectorAll('#lanes .lane[data-client] .task.ok').length >= `+strconv.Itoa(3*steps), 20*time.Second)
		lanes := eval[map[string]string](dash, `Object.fromEntries([...document.querySelectorAll('#lanes .lane[data-client]')].map(l => [l.dataset.client, l.dataset.profile]))`)
		want := map[string]string{}
		for p, id := range ids {
			want[id] = p
		}
		if !maps.Equal(lanes, want) {
			t.Errorf("%s: dashboard lanes (client → profile) %v; want one per tab %v", how, lanes, want)
		}
		bars := eval[map[string]int](dash, `Object.fromEntries([...document.querySelectorAll('#lanes .lane[data-client]')].map(l => [l.dataset.profile, l.querySelectorAll('.task.ok').length]))`)
		for p, id := range ids {
			if bars[p] != len(stale[id]) {
				t.Errorf("%s: %s's lane has %d accepted bars; want its %d accepted updates", how, p, bars[p], len(stale[id]))
			}
		}
		colours := eval[[]string](dash, `[...new Set([...document.querySelectorAll('#lanes .task')].map(b => b.style.background))]`)
		if len(colours) != 3 {
			t.Errorf("%s: the bars have colours %v; want one per profile", how, colours)
		}
		rows := eval[map[string]string](dash, `Object.fromEntries([...document.querySelectorAll('#profiles tbody tr')].map(r => [r.dataset.profile, r.cells[5].textContent]))`)
		pm, _ := strconv.ParseFloat(rows["phone-low"], 64)
		dm, err := strconv.ParseFloat(rows["desktop"], 64)
		if err != nil || pm <= dm || len(rows) != 3 {
			t.Errorf("%s: participation per profile shows mean staleness %v; want phone-low's above the desktop's", how, rows)
		}
		if k := eval[string](dash, `document.getElementById('n-round-k').textContent`); k != "server step" {
			t.Errorf("%s: the dashboard counts %q; want server step", how, k)
		}
	}
	dash.screenshotOf("dashboard-timeline", "#lanes-card")
	dash.screenshotOf("dashboard-profiles", "#profiles-card")
	t.Logf("test took %v", time.Since(start).Round(time.Millisecond))
}

// runStatus returns the run's status as the API reports it.
func (e *env) runStatus(run string) string {
	var r struct {
		Status string `json:"status"`
	}
	e.api("GET", "/api/runs/"+run, nil, &r)
	return r.Status
}

// stalenessByClient returns the staleness of each client's accepted
// updates, from the stored updates, and how many were accepted.
func (e *env) stalenessByClient(run string) (map[string][]int, int) {
	var us []struct {
		ClientID  string `json:"client_id"`
		Accepted  bool   `json:"accepted"`
		Staleness int    `json:"staleness"`
	}
	e.api("GET", "/api/runs/"+run+"/updates?limit=5000", nil, &us)
	out, n := map[string][]int{}, 0
	for _, u := range us {
		if u.Accepted {
			out[u.ClientID] = append(out[u.ClientID], u.Staleness)
			n++
		}
	}
	return out, n
}

func mean(xs []int) float64 {
	s := 0
	for _, x := range xs {
		s += x
	}
	return float64(s) / float64(max(1, len(xs)))
}
