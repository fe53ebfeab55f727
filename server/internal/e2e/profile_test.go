package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/shared/wire"
)

// TestTabProfile: ?profile=phone-low makes a tab emulate that device: the
// page shows the profile, the tab waits out the emulated upload time (which
// no real speed can shorten), its hello names the profile, and its update
// is accepted. An unknown profile stops the tab with a clear error before
// it joins.
func TestTabProfile(t *testing.T) {
	needBrowser(t)
	e := newEnv(t)
	_, join := e.createRun(map[string]any{"name": "e2e: profiles", "model": "mnist-2nn", "dataset": "mnist",
		"clients": 100, "rounds": 2, "fraction": 1, "min_clients": 1, "start_clients": 1, "batch": 10, "lr": 0.05,
		"eval_limit": 1000, "round_deadline": "30m"})
	b := browser(t)

	bad := openTab(t, b, "bad", join+"&workers=1&profile=tablet")
	bad.waitFor("the tab refusing the unknown profile", `qflare.stopped && qflare.stopped.code === 'cannot_join'`, 60*time.Second)
	headline := eval[string](bad, `document.getElementById('headline').textContent`)
	problem := eval[string](bad, `document.getElementById('problem').textContent`)
	if headline != "Cannot join" || !strings.Contains(problem, `"tablet"`) || !strings.Contains(problem, "phone-low") {
		t.Errorf("headline %q, problem %q; want Cannot join, naming tablet and the known profiles", headline, problem)
	}
	if id := eval[string](bad, `qflare.clientId`); id != "" {
		t.Errorf("the tab with an unknown profile joined as %s", id)
	}
	bad.cancel()

	tb := openTab(t, b, "phone", join+"&workers=1&profile=phone-low")
	tb.waitFor("the profile on the page", `qflare.profile && qflare.profile.name === 'phone-low'`, 60*time.Second)
	tb.waitFor("round 1 accepted", `(qflare.rounds[1] || {}).result === 'accepted'`, 120*time.Second)
	if fact := eval[string](tb, `document.getElementById('f-profile').textContent`); !strings.HasPrefix(fact, "phone-low · 2.6 GFLOPS") {
		t.Errorf("the page shows %q as the profile; want phone-low and its figures", fact)
	}
	if !eval[bool](tb, `qflare.events.some(e => e.type === 'emulate' && e.phase === 'upload' && e.profile === 'phone-low' && e.wait_s > 0.5 && e.message.startsWith('emulating phone-low: '))`) {
		t.Errorf("no emulated upload wait in the page's events: %s", eval[string](tb, `JSON.stringify(qflare.events.filter(e => e.type === 'emulate'))`))
	}
	id := eval[string](tb, `qflare.clientId`)
	conns := e.rec.connsOf(id)
	if len(conns) == 0 || len(conns[0].sent()) == 0 {
		t.Fatalf("no recorded connection of client %s", id)
	}
	msg, err := wire.ParseMessage(conns[0].sent()[0].Data, 0)
	if h, ok := msg.(*wire.Hello); err != nil || !ok || h.Device.Profile != "phone-low" {
		t.Errorf("first message %+v, %v; want a hello with device.profile phone-low", msg, err)
	}
}
