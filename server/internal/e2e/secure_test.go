package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/qflare/qflare/shared/wire"
)

// TestSecureTabs: three tabs, over HTTPS, complete secure rounds (the
// server learns only the sum of their updates); Chromium's connections are
// recorded with the post-quantum key exchange X25519MLKEM768; a tab closed
// after it sent its masked input, before the unmasking, does not stop its
// round: the other two reveal enough shares and the round completes (its
// masked input counted), and the next round runs with two. No tab ever
// sends a plain update.
func TestSecureTabs(t *testing.T) {
	needBrowser(t)
	e := newEnv(t, true)
	const rounds = 8
	run, join := e.createRun(map[string]any{"name": "e2e: three secure tabs", "model": "mnist-2nn", "dataset": "mnist",
		"clients": 100, "rounds": rounds, "fraction": 1, "min_clients": 2, "start_clients": 3, "batch": 10, "lr": 0.05,
		"eval_limit": 1000, "round_deadline": "30m",
		"secure_agg": map[string]any{"graph": "complete", "threshold": 0.6}})
	b := browser(t, chromedp.Flag("ignore-certificate-errors", true))
	tabs := make([]*tab, 3)
	for i := range tabs {
		u := join + "&workers=1"
		if i == 2 {
			u += "&slowdown=8" // a slow device: the others mask their inputs first
		}
		tabs[i] = openTab(t, b, fmt.Sprintf("tab%d", i+1), u)
	}
	waitUntil(t, "two secure rounds aggregated", 120*time.Second, func() bool { return e.aggregated(run) >= 2 })
	for _, tb := range tabs {
		tb.waitFor("round 1's secure cost", `(qflare.rounds[1] || {}).secure`, 20*time.Second)
		t.Logf("%s: secure aggregation work per round in Chromium: %s ms", tb.name,
			eval[string](tb, `JSON.stringify(Object.values(qflare.rounds).filter(r => r.secure).map(r => Math.round(r.secure.ms)))`))
	}

	// Close the first tab once the server has accepted its masked input
	// while the slow third tab still trains: the unmasking waits for every
	// masked input, so it has not started, and the closed tab reveals
	// nothing.
	victim := tabs[0]
	start := e.aggregated(run) + 2
	victim.waitFor(fmt.Sprintf("round %d or later started", start), fmt.Sprintf(`qflare.round >= %d`, start), 60*time.Second)
	r := eval[int](victim, `qflare.round`)
	victim.waitFor(fmt.Sprintf("round %d's masked input accepted", r), fmt.Sprintf(`(qflare.rounds[%d] || {}).result === 'accepted'`, r), 60*time.Second)
	if eval[string](tabs[2], `qflare.state`) != "training" || eval[bool](victim, fmt.Sprintf(`!!qflare.rounds[%d].secure`, r)) {
		t.Fatalf("round %d: the slowed tab is %s and the victim revealed already; the test cannot close it between masking and unmasking", r, eval[string](tabs[2], `qflare.state`))
	}
	victim.cancel()
	t.Logf("closed %s after it masked its input for round %d", victim.name, r)
	waitUntil(t, fmt.Sprintf("round %d aggregated without the closed tab's shares", r), 60*time.Second, func() bool { return e.aggregated(run) >= r })
	waitUntil(t, fmt.Sprintf("round %d aggregated with two tabs", r+1), 90*time.Second, func() bool { return e.aggregated(run) >= r+1 })

	rs := e.rounds(run)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Round < rs[j].Round })
	if rs[r-1].Status != "aggregated" || rs[r-1].NAccepted != 3 {
		t.Errorf("round %d: %s with %d masked inputs; want aggregated with all 3 (the closed tab had masked)", r, rs[r-1].Status, rs[r-1].NAccepted)
	}
	if rs[r].NAccepted != 2 {
		t.Errorf("round %d: %d masked inputs; want 2", r+1, rs[r].NAccepted)
	}
	var accs []float64
	for _, x := range rs {
		if x.Status == "aggregated" {
			accs = append(accs, x.TestAccuracy)
		}
	}
	t.Logf("global test accuracy per secure round: %.3f", accs)
	if len(accs) < 2 || accs[len(accs)-1] <= accs[0] || accs[0] < 0.3 {
		t.Errorf("global accuracy per round %.3f; want it to rise from a first round above 0.3", accs)
	}

	live, err := e.c.Run(run)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := live.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range v.Clients {
		if c.KeyExchange != "X25519MLKEM768" {
			t.Errorf("client %s connected with TLS key exchange %q; want X25519MLKEM768", c.ID, c.KeyExchange)
		}
	}
	// What the tabs sent: control messages and secure aggregation frames,
	// never an update frame.
	for _, c := range v.Clients {
		for _, rc := range e.rec.connsOf(c.ID) {
			rc.mu.Lock()
			for _, m := range rc.fromPeer {
				if m.Binary && !wire.IsSecAgg(m.Data) {
					t.Errorf("client %s sent a binary frame that is not a secure aggregation message (%q…)", c.ID, m.Data[:min(8, len(m.Data))])
				}
			}
			rc.mu.Unlock()
		}
	}
	var ups []struct {
		Codec    string `json:"codec"`
		Accepted bool   `json:"accepted"`
	}
	e.api("GET", "/api/runs/"+run+"/updates", nil, &ups)
	for _, u := range ups {
		if u.Accepted && u.Codec != "secagg" {
			t.Errorf("an accepted update with codec %q in a secure run", u.Codec)
		}
	}
}
