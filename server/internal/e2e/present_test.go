package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
	"github.com/qflare/qflare/wasmclient/headless"
)

// TestPhoneAndPresenter is the demo as an audience sees it. The presenter
// view is open on a projector-sized window; a phone (emulated Pixel 5:
// small viewport, touch, a phone's user agent) opens the server's root URL
// as someone who scanned the QR code would, and two more devices (headless
// clients) join. The phone's page must fit its screen and be usable by
// touch; the presenter view must show the devices, their speeds, the
// accuracy beside the centralized figure and a sentence on what happens,
// and follow the next public run when this one ends.
func TestPhoneAndPresenter(t *testing.T) {
	needBrowser(t)
	e := newEnv(t)
	const rounds = 4
	run, _ := e.createRun(map[string]any{"name": "e2e: demo", "model": "mnist-2nn", "dataset": "mnist", "partition": "iid",
		"clients": 10, "rounds": rounds, "fraction": 1, "min_clients": 1, "batch": 10, "lr": 0.05, "eval_limit": 2000,
		"round_deadline": "10m", "public": true})
	b := browser(t)
	present := openTab(t, b, "presenter", "about:blank")
	if err := chromedp.Do(present.ctx, chromedp.EmulateViewport(1920, 1080), chromedp.Navigate(e.srv.URL+"/present")); err != nil {
		t.Fatal(err)
	}
	present.waitFor("the presenter showing the public run", fmt.Sprintf(`qflarePresent.runId === %q && !!document.querySelector('#qr svg')`, run), 20*time.Second)
	if got, want := eval[string](present, `qflarePresent.joinURL`), e.srv.URL+"/"; got != want {
		t.Errorf("presenter QR code encodes %q; want the root URL %q (the public run joins from there)", got, want)
	}
	checkFits(t, present, "presenter at 1920x1080")
	if side := eval[float64](present, `document.querySelector('#qr svg').getBoundingClientRect().width`); side < 0.25*1920 {
		t.Errorf("QR code is %.0f px wide on a 1920 px projector; want at least a quarter of the width", side)
	}
	if s := eval[string](present, `qflarePresent.story`); !strings.Contains(s, "Scan the code") {
		t.Errorf("presenter story before anyone joined = %q; want an invitation to scan", s)
	}

	phone := openPhone(t, b, e.srv.URL+"/?workers=1")
	phone.waitFor("round 1 accepted on the phone", `(qflare.rounds[1] || {}).result === 'accepted'`, 90*time.Second)
	checkFits(t, phone, "join page on a Pixel 5")
	checkTouchTargets(t, phone)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var info struct {
		PublicRun struct{ Token string } `json:"public_run"`
	}
	e.api("GET", "/api/info", nil, &info)
	done := make(chan error, 1)
	go func() {
		done <- headless.Run(ctx, &headless.Options{Server: e.srv.URL, Run: run, Token: info.PublicRun.Token, Clients: 2, SlowMin: 1, SlowMax: 3})
	}()
	present.waitFor("three devices and two rounds on the presenter",
		`qflarePresent.clients.size >= 3 && [...qflarePresent.clients.values()].filter(c => c.connected).length === 3 && qflarePresent.rounds.size >= 2`, 90*time.Second)
	present.waitFor("three speed bars", `document.querySelectorAll('#speeds .speed').length === 3`, 20*time.Second)
	story := eval[string](present, `qflarePresent.story`)
	if !strings.Contains(story, "3 devices trained on their own data; only weights travelled") {
		t.Errorf("presenter story = %q; want it to say that 3 devices trained and only weights travelled", story)
	}
	if got := eval[string](present, `document.getElementById('central').textContent`); got != "97.3 %" {
		t.Errorf("centralized figure = %q; want 97.3 %% (mnist-2nn, one epoch)", got)
	}
	if names := eval[string](present, `[...document.querySelectorAll('#speeds .name')].map(e => e.textContent).join('|')`); !strings.Contains(names, "phone") {
		t.Errorf("device names %q; want the phone shown as one", names)
	}
	acc := eval[float64](present, `Math.max(...qflarePresent.rounds.values())`)
	if shown := eval[string](present, `document.getElementById('acc').textContent`); !strings.HasSuffix(shown, "%") || math.IsNaN(acc) {
		t.Errorf("accuracy shown %q (best %v); want a percentage", shown, acc)
	}
	if _, err := chromedp.Call(phone.ctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	phone.screenshotViewport("join-phone")
	if _, err := chromedp.Call(present.ctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	present.screenshot("present")

	// When the run ends the presenter and the phone say so, then both
	// follow the next public run (serve --demo starts one by itself).
	present.waitFor("the run's end on the presenter", `qflarePresent.story.startsWith('Done:')`, 3*time.Minute)
	phone.waitFor("the run's end on the phone", `qflare.stopped && qflare.stopped.code === 'run_end'`, 30*time.Second)
	cancel()
	<-done
	next, _ := e.createRun(map[string]any{"name": "e2e: next demo", "model": "mnist-2nn", "clients": 10, "rounds": 3,
		"fraction": 1, "min_clients": 1, "eval_limit": 500, "public": true})
	present.waitFor("the presenter to follow the next public run", fmt.Sprintf(`qflarePresent.runId === %q`, next), 30*time.Second)
	phone.waitFor("the phone to join the next public run", fmt.Sprintf(`window.qflare && qflare.runId === %q && qflare.conn === 'connected'`, next), 60*time.Second)

	// A tap on Leave (touch events, not a mouse click) leaves the run.
	tap(t, phone, "#leave")
	phone.waitFor("the phone to leave", `qflare.stopped !== null && qflare.stopped.code === 'left' && document.getElementById('leave').textContent === 'Join again'`, 20*time.Second)
}

// openPhone opens url in a new tab that emulates a phone: a Pixel 5's
// viewport, pixel ratio, user agent and touch screen.
func openPhone(t *testing.T, browserCtx context.Context, url string) *tab {
	t.Helper()
	tb := openTab(t, browserCtx, "phone", "about:blank")
	if err := chromedp.Do(tb.ctx, chromedp.Emulate(device.Pixel5), chromedp.Navigate(url)); err != nil {
		t.Fatalf("phone: %v", err)
	}
	if !eval[bool](tb, `matchMedia('(pointer: coarse)').matches && navigator.maxTouchPoints > 0`) {
		t.Fatalf("phone emulation has no touch screen (pointer: coarse)")
	}
	return tb
}

// checkFits checks that the page needs no horizontal scrolling and that no
// visible element sticks out of the viewport sideways.
func checkFits(t *testing.T, tb *tab, what string) {
	t.Helper()
	over := eval[string](tb, `(() => {
		const w = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > w) out.push('page scrollWidth ' + document.documentElement.scrollWidth + ' > ' + w);
		for (const e of document.querySelectorAll('body *')) {
			const r = e.getBoundingClientRect();
			if (r.width === 0 || r.height === 0 || getComputedStyle(e).visibility === 'hidden') continue;
			if (e.closest('.scroll')) continue; // tables scroll inside their card
			if (r.right > w + 1 || r.left < -1) out.push((e.id || e.tagName.toLowerCase() + '.' + e.className) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
		}
		return out.slice(0, 8).join('; ');
	})()`)
	if over != "" {
		t.Errorf("%s does not fit the viewport: %s", what, over)
	}
}

// checkTouchTargets checks that the page's buttons and file pickers are big
// enough to hit with a finger (44 CSS px, Apple's and WCAG 2.5.5's size)
// and its text big enough to read.
func checkTouchTargets(t *testing.T, tb *tab) {
	t.Helper()
	small := eval[string](tb, `[...document.querySelectorAll('button, input[type=file]')]
		.filter(e => e.offsetParent !== null)
		.map(e => [e.id || e.textContent.trim(), e.getBoundingClientRect()])
		.filter(([, r]) => r.height < 44)
		.map(([n, r]) => n + ' ' + Math.round(r.width) + 'x' + Math.round(r.height)).join('; ')`)
	if small != "" {
		t.Errorf("touch targets smaller than 44 px on the phone: %s", small)
	}
	if px := eval[float64](tb, `parseFloat(getComputedStyle(document.body).fontSize)`); px < 15 {
		t.Errorf("body text is %v px on the phone; want at least 15", px)
	}
}

// tap touches the centre of the element matched by selector, as a finger
// would: touchStart then touchEnd, which the browser turns into a click.
func tap(t *testing.T, tb *tab, selector string) {
	t.Helper()
	r := eval[[]float64](tb, fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.scrollIntoView({block: 'center'});
		const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`, selector))
	pt := []*input.TouchPoint{{X: r[0], Y: r[1]}}
	if _, err := chromedp.Call(tb.ctx, input.DispatchTouchEvent, input.DispatchTouchEventParams{Type: input.DispatchTouchEventTypeTouchStart, TouchPoints: pt}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tb.ctx, input.DispatchTouchEvent, input.DispatchTouchEventParams{Type: input.DispatchTouchEventTypeTouchEnd, TouchPoints: []*input.TouchPoint{}}); err != nil {
		t.Fatal(err)
	}
}
