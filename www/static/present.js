// The presenter view (/present): for a projector in front of an audience. It
// shows the public run (or ?run=ID) with a big QR code of the join link, the
// global accuracy beside what centralized training reaches, the devices and
// their training speeds, and one plain sentence on what is happening. It
// reads the REST API once and then follows the run's server-sent events;
// when the run ends it waits for the server's next public run (serve --demo
// starts one) and switches to it. window.qflarePresent exposes its state
// (tests read it).
'use strict';

(() => {
  // Centralized baselines measured with `server train` (README.md, one
  // epoch over all 60,000 training images, evaluated on the 10,000 test
  // images), the figure the federation is measured against.
  const CENTRAL = {
    'mnist-2nn': { acc: 0.9727, what: 'one machine, all 60,000 images, 1 epoch' },
    'mnist-cnn': { acc: 0.9853, what: 'one machine, all 60,000 images, 1 epoch' },
  };
  const P = (window.qflarePresent = {
    runId: '', run: null, view: null, rounds: new Map(), clients: new Map(), joinURL: '', feed: 'closed', story: '',
  });
  let es = null, chart = null, dirty = false, waitingForNext = false;

  const token = () => sessionStorage.getItem('qflare.admin') || '';

  async function api(path) {
    const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
    const r = await fetch(path, { headers, cache: 'no-store' });
    const out = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(out.error || `GET ${path}: HTTP ${r.status}`);
    return out;
  }

  // pickRun finds the run to show: ?run=ID, else the server's public run.
  async function pickRun() {
    const info = await api('/api/info');
    const asked = new URLSearchParams(location.search).get('run');
    const id = asked || (info.public_run && info.public_run.id) || '';
    const base = (info.public_url || location.origin).replace(/\/+$/, '');
    return { id, base, isPublic: !asked && !!info.public_run };
  }

  async function start() {
    let pick;
    try {
      pick = await pickRun();
    } catch (e) {
      setStory('Cannot reach the server: ' + e.message);
      return setTimeout(start, 3000);
    }
    if (!pick.id) {
      setStory('No public run yet. Start the server with --demo, or open /present?run=ID.');
      return setTimeout(start, 3000);
    }
    if (pick.id === P.runId && P.view && live(P.view.status)) return;
    await show(pick);
  }

  async function show(pick) {
    if (es) es.close();
    waitingForNext = false;
    P.runId = pick.id;
    const enc = encodeURIComponent(pick.id);
    const [run, rounds] = await Promise.all([api(`/api/runs/${enc}`), api(`/api/runs/${enc}/rounds`)]);
    P.run = run;
    P.view = run.live || null;
    P.rounds = new Map();
    for (const r of rounds) if (r.status === 'aggregated') P.rounds.set(r.round, r.test_accuracy);
    P.clients = new Map(((run.live && run.live.clients) || []).map((c) => [c.id, c]));
    // The public run is joined from the server's root URL: shorter to type
    // and a simpler QR code than the join link with its token.
    P.joinURL = pick.isPublic ? pick.base + '/' : run.join_url ? new URL(run.join_url, pick.base).href : '';
    drawJoin(pick.base);
    makeChart();
    follow();
    render();
  }

  function follow() {
    es = new EventSource(`/api/runs/${encodeURIComponent(P.runId)}/events`);
    es.onopen = () => { P.feed = 'live'; ui.setText('feed', ''); };
    es.onerror = () => { P.feed = 'reconnecting'; ui.setText('feed', 'reconnecting to the server…'); };
    const on = (type, f) => es.addEventListener(type, (e) => { f(JSON.parse(e.data)); schedule(); });
    on('snapshot', (v) => {
      P.view = v;
      for (const c of v.clients || []) P.clients.set(c.id, c);
      if (!live(v.status)) ended();
    });
    on('client', (ev) => P.clients.set(ev.data.id, { ...(P.clients.get(ev.data.id) || {}), ...ev.data }));
    on('round_started', (ev) => { if (P.view) P.view.open_round = ev.data; });
    on('round_ended', (ev) => {
      const r = ev.data;
      if (!r.failed) {
        P.rounds.set(r.round, r.test_accuracy);
        if (P.view) { P.view.test_accuracy = r.test_accuracy; P.view.model_version = r.model_version; }
      }
      if (P.view) P.view.open_round = null;
    });
    on('run_status', (ev) => {
      P.view = ev.data;
      if (!live(ev.data.status)) ended();
    });
  }

  const live = (s) => s === 'running' || s === 'waiting';

  // ended keeps the final state on screen and looks for the next public run.
  function ended() {
    if (waitingForNext) return;
    waitingForNext = true;
    if (es) es.close();
    const poll = async () => {
      if (!waitingForNext) return;
      try {
        const pick = await pickRun();
        if (pick.id && pick.id !== P.runId && pick.isPublic) return show(pick);
      } catch (e) { /* the server may be restarting */ }
      setTimeout(poll, 2000);
    };
    setTimeout(poll, 2000);
  }

  function drawJoin(base) {
    ui.setText('join-url', P.joinURL.replace(/^https?:\/\//, '') || 'the join link needs the admin token');
    const qr = ui.$('qr');
    qr.replaceChildren();
    if (P.joinURL) {
      const q = qrcode(0, 'M');
      q.addData(P.joinURL);
      q.make();
      qr.innerHTML = q.createSvgTag({ cellSize: 8, margin: 2, scalable: true, alt: 'QR code of ' + P.joinURL });
    }
    const host = new URL(base).hostname;
    const loop = host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
    const warn = ui.$('loopback');
    warn.classList.toggle('hidden', !loop);
    warn.textContent = loop ? `Phones cannot reach ${host}. Start the server with --addr 0.0.0.0:8080 ` +
      '--public-url http://THIS-MACHINE-ADDRESS:8080 (or set QFLARE_PUBLIC_URL).' : '';
  }

  function makeChart() {
    const target = ui.$('acc-chart');
    target.replaceChildren();
    const model = ((P.run && P.run.config) || {}).model;
    const c = CENTRAL[model];
    const series = [{ label: 'federated (global model)', fmt: (v) => ui.pct(v) }];
    if (c) series.push({ label: 'centralized, ' + c.what, fmt: (v) => ui.pct(v), color: '#667085' });
    chart = ui.chart(target, { series, height: Math.max(220, Math.round(window.innerHeight * 0.33)),
      scales: { y: { label: 'test accuracy', fmt: (v) => (100 * v).toFixed(0) + '%' } } });
  }

  function schedule() {
    if (dirty) return;
    dirty = true;
    requestAnimationFrame(() => { dirty = false; render(); });
  }

  function setStory(s) {
    P.story = s;
    ui.setText('story', s);
  }

  function deviceName(d) {
    const ua = (d && d.user_agent) || '';
    const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'Mac'
      : /Windows/.test(ua) ? 'Windows' : /Linux|X11/.test(ua) ? 'Linux' : '';
    const b = ua.match(/(Firefox|Edg|OPR|Chrome|Safari)\//);
    const browser = b ? (b[1] === 'Edg' ? 'Edge' : b[1] === 'OPR' ? 'Opera' : b[1]) : (d && d.kind) || 'device';
    const mobile = /Mobi|Android|iPhone/.test(ua) ? 'phone' : '';
    return [browser, os, mobile].filter(Boolean).join(' · ');
  }

  function render() {
    const run = P.run, v = P.view;
    if (!run) return;
    const cfg = run.config || {};
    const connected = [...P.clients.values()].filter((c) => c.connected);
    const n = connected.length;
    const xs = [...P.rounds.keys()].sort((a, b) => a - b);
    const accs = xs.map((r) => P.rounds.get(r));
    const last = accs.length ? accs[accs.length - 1] : null;
    const central = CENTRAL[cfg.model];

    ui.setText('acc', last === null ? '–' : ui.pct(last));
    ui.setText('acc-round', xs.length ? `after round ${xs[xs.length - 1]}` : 'no round yet');
    ui.setText('central', central ? ui.pct(central.acc) : '–');
    ui.setText('central-k', central ? `centralized training (${central.what})` : 'no centralized figure for ' + cfg.model);
    ui.setText('tabs', String(n));
    const round = v ? (v.open_round ? v.open_round.round : v.round) : 0;
    ui.setText('round', round ? `${round}/${cfg.rounds}` : '–');
    if (chart) {
      const data = [xs, accs];
      if (central) data.push(xs.map(() => central.acc));
      chart.set(data);
    }
    renderSpeeds(connected);
    setStory(story(v, n, last, central, cfg));
  }

  // story is the one sentence for the audience.
  function story(v, n, acc, central, cfg) {
    const devices = (k) => `${k} device${k === 1 ? '' : 's'}`;
    const status = v ? v.status : 'waiting';
    const accText = acc === null ? '' : ui.pct(acc);
    const gap = central && acc !== null ? central.acc - acc : null;
    const versus = gap === null ? '' : gap <= 0.001 ? ', as good as training on all the data in one place'
      : `, ${(100 * gap).toFixed(1)} points from training on all the data in one place`;
    if (!live(status)) {
      const used = Math.max(n, ...(v && v.clients ? [v.clients.length] : [0]));
      return `Done: ${devices(used)} trained on their own data and reached ${accText || '–'}${versus}. ` +
        'Only model weights travelled. A new run starts in a moment.';
    }
    if (n === 0) return 'Scan the code to join: training starts as soon as the first device is in.';
    if (acc === null) return `${devices(n)} ${n === 1 ? 'is' : 'are'} training on ${n === 1 ? 'its' : 'their'} own data. The server only sees the weights they send back.`;
    return `${devices(n)} trained on their own data; only weights travelled. The shared model reaches ${accText}${versus}.`;
  }

  function renderSpeeds(clients) {
    const box = ui.$('speeds');
    if (!clients.length) {
      box.replaceChildren(ui.el('p', { class: 'muted', text: 'No device yet.' }));
      return;
    }
    clients.sort((a, b) => (b.samples_per_s || 0) - (a.samples_per_s || 0));
    const top = Math.max(1, ...clients.map((c) => c.samples_per_s || 0));
    box.replaceChildren(...clients.slice(0, 10).map((c) => {
      const s = c.samples_per_s || 0;
      const fill = ui.el('div', { class: 'fill' });
      fill.style.width = (100 * s / top).toFixed(1) + '%';
      return ui.el('div', { class: 'speed', 'data-client': c.id },
        ui.el('div', { class: 'name', text: deviceName(c.device) }),
        ui.el('div', { class: 'track' }, fill),
        ui.el('div', { class: 'val', text: s ? `${ui.num(s)} images/s` : c.state || 'joining' }));
    }));
  }

  start();
})();
