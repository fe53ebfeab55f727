// The dashboard: one run's live state over server-sent events (the REST API
// only loads the state at the start and after a reconnect), a run picker,
// the join QR code, and starting and stopping runs with the admin token.
// An async run (FedBuff) is shown in server steps, model versions and
// staleness instead of rounds; the client timeline and participation per
// profile are drawn by lanes.js. window.qflareDash exposes the state (tests
// read it).
'use strict';

(() => {
  const D = (window.qflareDash = {
    runId: '', run: null, view: null, rounds: new Map(), clients: new Map(), updates: [],
    lastUpdate: new Map(), feed: 'closed', events: 0, async: false,
  });
  // keep is how many updates the page holds (newest first): the timeline
  // and the participation table are drawn from them.
  const keep = 5000;
  let es = null, dirty = false, accChart = null, bytesChart = null, staleChart = null, chartMode = '', runs = [];

  // ---- admin token: from #admin=TOKEN, kept for this tab only ---------------
  const token = (() => {
    const m = location.hash.match(/admin=([^&]+)/);
    if (m) {
      sessionStorage.setItem('qflare.admin', decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search); // keep it off the screen
    }
    return () => sessionStorage.getItem('qflare.admin') || '';
  })();

  async function api(method, path, body) {
    const headers = {};
    if (token()) headers.Authorization = 'Bearer ' + token();
    if (body) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined, cache: 'no-store' });
    const out = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(out.error || `${method} ${path}: HTTP ${r.status}`);
    return out;
  }

  function problem(msg) {
    const p = ui.$('problem');
    p.classList.toggle('hidden', !msg);
    p.textContent = msg || '';
  }

  function pill(id, text, cls) {
    const e = ui.$(id);
    e.textContent = text;
    e.className = 'pill ' + (cls || '');
  }

  // ---- loading ----------------------------------------------------------------
  async function loadRuns(select) {
    runs = await api('GET', '/api/runs');
    runs.sort((a, b) => new Date(b.created_at) - new Date(a.created_at));
    const p = ui.$('picker');
    p.replaceChildren(...runs.map((r) => ui.el('option', { value: r.id, text: `${r.name} · ${r.status} · ${r.id}` })));
    let id = select || new URLSearchParams(location.search).get('run');
    if (!runs.some((r) => r.id === id)) {
      const live = runs.find((r) => r.status === 'running' || r.status === 'waiting');
      id = (live || runs[0] || {}).id;
    }
    if (id) {
      p.value = id;
      await load(id);
    } else {
      ui.setText('run-name', 'No runs yet: start one below');
      ui.$('new-run').open = true;
    }
  }

  async function load(id) {
    if (es) es.close();
    D.runId = id;
    const u = new URL(location.href);
    u.searchParams.set('run', id);
    history.replaceState(null, '', u.pathname + u.search);
    await reload();
    follow();
  }

  // reload reads the run's whole state over REST (at the start and after the
  // event feed reconnects).
  async function reload() {
    const id = D.runId;
    const enc = encodeURIComponent(id);
    const [run, rounds, clients, updates] = await Promise.all([
      api('GET', `/api/runs/${enc}`), api('GET', `/api/runs/${enc}/rounds`),
      api('GET', `/api/runs/${enc}/clients`), api('GET', `/api/runs/${enc}/updates?order=desc&limit=${keep}`),
    ]);
    if (id !== D.runId) return;
    D.run = run;
    D.view = run.live || null;
    D.async = (run.config || {}).mode === 'async';
    D.rounds = new Map(rounds.map((r) => [r.round, {
      round: r.round, status: r.status, acc: r.test_accuracy, loss: r.test_loss, up: r.bytes_up, down: r.bytes_down,
      selected: r.n_selected, received: r.n_received, accepted: r.n_accepted, error: r.error, epsilon: r.epsilon,
      version: r.model_version, finished: lanes.time(r.finished_at),
      stale: (r.metrics || {}).mean_staleness, staleMax: (r.metrics || {}).max_staleness,
    }]));
    D.clients = new Map(clients.map((c) => [c.id, { ...c, device: c.device || {}, ...(c.live || {}) }]));
    D.updates = updates.map((u) => ({ ...u, client: u.client_id })); // newest first
    D.lastUpdate = new Map();
    for (const u of [...D.updates].reverse()) D.lastUpdate.set(u.client, u);
    renderStatic();
    render();
  }

  function follow() {
    es = new EventSource(`/api/runs/${encodeURIComponent(D.runId)}/events`);
    let broken = false;
    es.onopen = () => {
      D.feed = 'live';
      pill('feed', 'live', 'good');
      if (broken) reload().catch((e) => problem(e.message));
      broken = false;
    };
    es.onerror = () => {
      broken = true;
      D.feed = 'reconnecting';
      pill('feed', 'reconnecting', 'warn');
    };
    const on = (type, f) => es.addEventListener(type, (e) => {
      D.events++;
      f(JSON.parse(e.data));
      schedule();
    });
    on('snapshot', (v) => {
      D.view = v;
      for (const c of v.clients || []) merge(c);
      if (v.open_round) openRound(v.open_round);
    });
    on('client', (ev) => merge(ev.data));
    on('round_started', (ev) => openRound(ev.data));
    on('update', (ev) => {
      const u = { ...ev.data, received_at: ev.data.received_at || ev.time };
      D.updates.unshift(u);
      D.updates.length = Math.min(D.updates.length, keep);
      D.lastUpdate.set(u.client, u);
    });
    on('round_ended', (ev) => {
      const r = ev.data;
      D.rounds.set(r.round, { round: r.round, status: r.failed ? 'failed' : 'aggregated', acc: r.test_accuracy,
        loss: r.test_loss, up: r.bytes_up, down: r.bytes_down, selected: (r.selected || []).length,
        received: r.received, accepted: r.accepted, error: r.failed, seconds: r.seconds, epsilon: r.epsilon,
        version: r.model_version, finished: lanes.time(ev.time), stale: r.mean_staleness, staleMax: r.max_staleness });
      if (D.view && !r.failed) D.view.test_accuracy = r.test_accuracy;
      // The aggregator's verdicts arrive with the round: attach them to the
      // round's updates (score, cosine, norm ratio, exclusion).
      for (const v of r.verdicts || []) {
        const u = D.updates.find((x) => x.round === r.round && x.client === v.client && x.accepted);
        if (u) Object.assign(u, { score: v.score, cosine: v.cosine, norm_ratio: v.norm_ratio, excluded: v.excluded, reason: v.reason || u.reason });
      }
    });
    on('run_status', (ev) => {
      D.view = { ...ev.data, clients: (D.view && D.view.clients) || [] };
      if (D.run) D.run.status = ev.data.status;
    });
    // The run is over (or the server is going away): the stream says so
    // last and closes; reconnecting would only replay the same end.
    on('end', (ev) => {
      es.close();
      if (ev.data) {
        D.view = { ...(D.view || {}), ...ev.data, clients: (D.view && D.view.clients) || [] };
        if (D.run) D.run.status = ev.data.status;
      }
      D.feed = 'ended';
      pill('feed', 'ended', '');
    });
  }

  function merge(cv) {
    const old = D.clients.get(cv.id) || {};
    D.clients.set(cv.id, { ...old, ...cv });
  }

  function openRound(r) {
    D.rounds.set(r.round, { ...(D.rounds.get(r.round) || {}), round: r.round, status: 'open',
      selected: (r.selected || []).length, received: r.received, accepted: r.accepted, up: r.bytes_up, down: r.bytes_down,
      pending: r.pending, deadline: r.deadline, target: r.target, base: r.base_version });
  }

  // ---- rendering ----------------------------------------------------------------
  function schedule() {
    if (dirty) return;
    dirty = true;
    requestAnimationFrame(() => { dirty = false; render(); });
  }

  // renderStatic draws what changes only with the run: configuration, QR.
  function renderStatic() {
    const r = D.run, c = r.config || {};
    ui.setText('run-name', r.name);
    document.title = `QFLARE · ${r.name}`;
    const facts = [
      ['Model', `${c.model} on ${c.dataset}`], ['Partition', `${c.partition} into ${c.clients} slices`],
      ...(D.async ? [
        ['Mode', `async (FedBuff): a server step every ${c.buffer} updates`], ['Server steps', c.rounds],
        ['Training at once', `${c.concurrency} clients`],
        ['Staleness', `weight ${c.staleness}, at most ${c.max_staleness} steps stale`],
      ] : [
        ['Rounds', c.rounds], ['Per round', c.clients_per_round ? `${c.clients_per_round} clients` : `${ui.pct(c.fraction, 0)} of connected, at least ${c.min_clients}`],
      ]),
      ['Local training', `${c.local_epochs} epoch${c.local_epochs > 1 ? 's' : ''}, batch ${c.batch}, lr ${c.lr}` + (c.momentum ? `, momentum ${c.momentum}` : '')],
      ['Strategy', c.strategy + (c.mu ? ` (mu ${c.mu})` : '') + (c.server_lr ? `, server lr ${c.server_lr}` : '')],
      ['Codecs', `up ${c.codec} · down ${c.down_codec}`],
      [D.async ? 'Task deadline' : 'Deadline', c.round_deadline || 'none'], ['Evaluation', c.eval_limit ? `first ${c.eval_limit} test images` : 'whole test set'],
      ['Parameters', r.live ? ui.num(r.live.params) : '–'], ['Run id', r.id],
    ];
    document.body.classList.toggle('async', D.async);
    ui.setText('n-round-k', D.async ? 'server step' : 'round');
    ui.setText('rounds-title', D.async ? 'Server steps' : 'Rounds');
    ui.setText('bytes-title', D.async ? 'Bytes per step' : 'Bytes per round');
    document.querySelectorAll('#updates .round-k').forEach((e) => { e.textContent = D.async ? 'Step' : 'Round'; });
    charts();
    ui.$('config').replaceChildren(...facts.flatMap(([k, v]) => [ui.el('dt', { text: k }), ui.el('dd', { text: v })]));
    const join = r.join_url ? new URL(r.join_url, location.origin).href : ''; // absolute (--public-url) or relative
    ui.setText('join-url', join || 'the join link is shown with the admin token');
    const qr = ui.$('qr');
    qr.replaceChildren();
    if (join) {
      const q = qrcode(0, 'M');
      q.addData(join);
      q.make();
      qr.innerHTML = q.createSvgTag({ cellSize: 4, margin: 2, scalable: true, alt: 'QR code of the join link' });
    }
  }

  // charts (re)builds the charts when the run's kind changes: an async
  // run's x axis is the server step.
  function charts() {
    const x = D.async ? 'step' : 'round';
    if (chartMode === x) return;
    chartMode = x;
    const box = (id) => {
      const b = ui.el('div');
      ui.$(id).replaceChildren(b);
      return b;
    };
    accChart = ui.chart(box('acc-chart'), {
      x, series: [{ label: 'accuracy', fmt: (v) => ui.pct(v) }, { label: 'loss', scale: 'loss', fmt: (v) => v.toFixed(3) }],
      scales: { y: { range: [0, 1], fmt: (v) => Math.round(v * 100) + '%', label: 'accuracy' }, loss: { label: 'loss' } },
    });
    bytesChart = ui.chart(box('bytes-chart'), {
      x, series: [{ label: 'up (MB)', fmt: (v) => v.toFixed(2) + ' MB' }, { label: 'down (MB)', fmt: (v) => v.toFixed(2) + ' MB' }],
      scales: { y: { label: 'MB', zero: true } },
    });
    staleChart = ui.chart(box('stale-chart'), {
      x, series: [{ label: 'mean staleness', fmt: (v) => v.toFixed(2) }, { label: 'max', fmt: (v) => v.toFixed(0) }],
      scales: { y: { label: 'steps behind', zero: true } },
    });
  }

  function render() {
    const v = D.view, r = D.run;
    if (!r) return;
    const status = (v && v.status) || r.status;
    pill('status', status, status === 'running' ? 'good' : status === 'waiting' ? 'info' : status === 'failed' ? 'bad' : '');
    ui.$('stop').disabled = !token() || !['running', 'waiting'].includes(status);
    ui.setText('n-round', `${v ? v.round : r.current_round} / ${r.config.rounds}`);
    const aggregated = [...D.rounds.values()].filter((x) => x.status === 'aggregated').sort((a, b) => a.round - b.round);
    const last = aggregated[aggregated.length - 1];
    ui.setText('n-version', v ? v.model_version : r.model_version);
    ui.setText('n-stale', last && last.stale != null ? last.stale.toFixed(2) : '–');
    const lastAcc = aggregated.length ? aggregated[aggregated.length - 1].acc : v && v.test_accuracy;
    ui.setText('n-acc', ui.pct(lastAcc));
    const clients = [...D.clients.values()];
    const connected = clients.filter((c) => c.connected);
    ui.setText('n-clients', connected.length);
    ui.setText('n-speed', ui.num(connected.reduce((s, c) => s + (c.state === 'training' ? c.samples_per_s || 0 : 0), 0)));
    ui.setText('n-phase', v ? `Phase: ${v.phase}` : '');
    const eps = aggregated.filter((x) => x.epsilon != null);
    ui.setText('n-privacy', eps.length ? `Differential privacy: ε = ${eps[eps.length - 1].epsilon.toPrecision(3)} spent (δ from the run's configuration)` : '');
    renderTimeline();
    renderCharts(aggregated);
    renderLanes();
    renderProfiles();
    renderClients(clients);
    renderUpdates();
  }

  function renderTimeline() {
    const rs = [...D.rounds.values()].sort((a, b) => a.round - b.round);
    ui.$('timeline').replaceChildren(...rs.map((x) => ui.el('span', {
      class: 'r ' + (x.status === 'open' ? 'open' : x.status === 'aggregated' ? 'ok' : x.status === 'failed' ? 'failed' : ''),
      'data-round': x.round,
      title: (D.async ? `step ${x.round}` + (x.version ? ` → version ${x.version}` : '') : `round ${x.round}`) + `: ${x.status}` +
        (x.acc ? `, accuracy ${ui.pct(x.acc)}` : '') + (x.epsilon != null ? `, ε ${x.epsilon.toPrecision(3)}` : '') +
        (D.async ? `, ${x.accepted || 0} updates` + (x.stale != null ? `, mean staleness ${x.stale.toFixed(2)}, max ${x.staleMax}` : '')
          : `, ${x.accepted || 0} of ${x.selected || 0} selected clients accepted`) + (x.error ? ` (${x.error})` : ''),
      text: x.round,
    })));
    const open = rs.find((x) => x.status === 'open');
    let text = '';
    if (open && D.async) {
      text = `step ${open.round} open: ${open.accepted || 0} of ${open.target || D.run.config.buffer} updates buffered` +
        (open.base != null ? `; the model is version ${open.base}` : '');
    } else if (open) {
      text = `round ${open.round} open: ${open.received || 0} of ${open.selected} updates received` +
        (open.deadline ? `, deadline ${new Date(open.deadline).toLocaleTimeString()}` : '');
    }
    ui.setText('open-round', text);
  }

  function renderCharts(aggregated) {
    const xs = aggregated.map((x) => x.round);
    accChart.set([xs, aggregated.map((x) => x.acc), aggregated.map((x) => x.loss)]);
    const all = [...D.rounds.values()].filter((x) => x.status !== 'open').sort((a, b) => a.round - b.round);
    bytesChart.set([all.map((x) => x.round), all.map((x) => (x.up || 0) / 1e6), all.map((x) => (x.down || 0) / 1e6)]);
    if (D.async) staleChart.set([xs, aggregated.map((x) => x.stale ?? null), aggregated.map((x) => x.staleMax ?? null)]);
  }

  function profileOf(id) {
    const c = D.clients.get(id);
    return (c && (c.profile || (c.device && c.device.profile))) || '';
  }

  // renderLanes draws the client timeline: every held update with its task
  // time, and (live) the tasks clients are working on now.
  function renderLanes() {
    if (!D.run) return;
    const now = Date.now(), tasks = [], seen = new Set(), step = D.async ? 'step' : 'round';
    let from = Infinity, to = -Infinity;
    for (const u of D.updates) {
      const a = lanes.time(u.task_at), b = lanes.time(u.received_at);
      if (!(a <= b)) continue;
      seen.add(u.client + '@' + a);
      from = Math.min(from, a);
      to = Math.max(to, b);
      const took = ui.secs((b - a) / 1000);
      const what = !u.accepted ? `refused: ${u.reason || u.code}` : u.excluded ? `excluded: ${u.reason}` : 'accepted';
      tasks.push({ client: u.client, profile: u.profile || profileOf(u.client), from: a, to: b,
        state: !u.accepted ? 'bad' : u.excluded ? 'excluded' : 'ok',
        title: `${u.client}: ${step} ${u.round}, ` + (D.async ? `trained version ${u.base_version}, ${u.staleness || 0} steps stale, ` : '') +
          `${took} from task to update, ${what}` });
    }
    const live = D.feed === 'live';
    for (const c of D.clients.values()) {
      const a = lanes.time(c.task_at);
      if (!live || !c.connected || !(a > 0) || seen.has(c.id + '@' + a)) continue;
      from = Math.min(from, a);
      tasks.push({ client: c.id, profile: profileOf(c.id), from: a, to: Math.max(a, now), state: 'open',
        title: `${c.id}: ${step} ${c.task_round}` + (D.async ? `, training version ${c.task_version}` : '') + `, ${ui.secs((now - a) / 1000)} so far` });
    }
    if (live && tasks.length) to = Math.max(to, now);
    const ticks = [...D.rounds.values()].filter((x) => x.finished > 0)
      .map((x) => ({ at: x.finished, label: D.async ? `step ${x.round} → version ${x.version}` : `round ${x.round} closed` }));
    lanes.draw(ui.$('lanes'), { tasks, ticks, from, to, clients: D.clients, legend: ui.$('lanes-legend'),
      tickName: D.async ? 'server step' : 'round closed' });
    const n = new Set(tasks.map((t) => t.client)).size;
    ui.setText('lanes-summary', tasks.length ? `${n} client${n === 1 ? '' : 's'} · ${ui.secs((to - from) / 1000)}` +
      (D.updates.length >= keep ? ` · the last ${keep} updates` : '') : '');
  }

  function renderProfiles() {
    lanes.participation(ui.$('profiles').tBodies[0], D.updates, D.clients, profileOf);
    ui.setText('profiles-note', D.updates.length >= keep ? `Of the last ${keep} updates.` : '');
  }

  function deviceText(d) {
    if (!d) return '–';
    const ua = d.user_agent || '';
    const b = ua.match(/(Firefox|Edg|OPR|Chrome|Chromium|Safari)\/(\d+)/);
    const parts = [d.profile ? `emulating ${d.profile}` : '',
      b ? `${b[1] === 'Edg' ? 'Edge' : b[1]} ${b[2]}` : (d.kind || '') + (ua ? ' · ' + ua.slice(0, 24) : ''), d.platform];
    if (d.cores) parts.push(`${d.cores} cores`);
    if (d.workers) parts.push(`${d.workers} worker${d.workers > 1 ? 's' : ''}`);
    if (d.memory_gb) parts.push(`${d.memory_gb} GB`);
    return parts.filter(Boolean).join(' · ');
  }

  function renderClients(clients) {
    clients.sort((a, b) => (b.connected - a.connected) || (a.slice - b.slice));
    ui.setText('clients-summary', `${clients.filter((c) => c.connected).length} connected of ${clients.length} seen`);
    ui.$('clients').tBodies[0].replaceChildren(...clients.map((c) => {
      const p = c.progress;
      const state = c.state === 'training' && p ? `training · epoch ${p.epoch}/${p.epochs} · batch ${p.batch}/${p.batches}` : (c.state || (c.connected ? 'idle' : 'offline'));
      const u = D.lastUpdate.get(c.id);
      const last = u ? ui.el('span', { class: u.accepted ? 'ok' : 'bad', title: u.reason || '' },
        `${D.async ? 'step' : 'round'} ${u.round} · ${u.accepted ? 'accepted' : 'rejected: ' + (u.reason || u.code)}` +
        (D.async && u.accepted ? ` · ${u.staleness || 0} stale` : '') + ` · ${ui.bytes(u.bytes)}`) : '–';
      return ui.el('tr', { 'data-client': c.id, class: c.connected ? '' : 'muted' },
        ui.el('td', {}, ui.el('span', { class: 'mono', text: c.id }), ui.el('div', { class: 'small muted', text: `slice ${c.slice} · ${c.kind || ''}` })),
        ui.el('td', { class: 'small', text: deviceText(c.device) }),
        ui.el('td', { text: state }),
        ui.el('td', { class: 'num', text: ui.num(c.samples_per_s) }),
        ui.el('td', { class: 'small' }, last),
        ui.el('td', { class: 'num', text: `${c.accepted || 0}/${c.updates || 0}` }),
        ui.el('td', { class: 'num', text: ui.bytes(c.bytes_up || 0) }),
        ui.el('td', { class: 'num', text: ui.bytes(c.bytes_down || 0) }),
        ui.el('td', { class: 'small', text: c.connected ? 'now' : ui.ago(c.last_seen) }));
    }));
  }

  function resultText(u) {
    if (!u.accepted) return `rejected: ${u.reason || u.code}`;
    return u.excluded ? `excluded: ${u.reason}` : 'accepted';
  }

  function renderUpdates() {
    ui.$('updates').tBodies[0].replaceChildren(...D.updates.slice(0, 50).map((u) => ui.el('tr', {},
      ui.el('td', { text: u.round }),
      ui.el('td', { class: 'mono', text: u.client }),
      ui.el('td', { class: u.accepted && !u.excluded ? 'ok' : 'bad', text: resultText(u) }),
      ui.el('td', { class: 'num async-only', text: u.accepted ? u.staleness || 0 : '–' }),
      ui.el('td', { class: 'num', text: ui.num(u.samples) }),
      ui.el('td', { class: 'num', text: ui.bytes(u.bytes) }),
      ui.el('td', { class: 'num', text: u.bytes_down ? ui.bytes(u.bytes_down) : '–' }),
      ui.el('td', { class: 'num', text: u.loss ? u.loss.toFixed(3) : '–' }),
      ui.el('td', { class: 'num', text: ui.pct(u.accuracy) }),
      ui.el('td', { class: 'num', text: u.train_ms ? ui.secs(u.train_ms / 1000) : '–' }),
      ui.el('td', { class: 'num', text: ui.num(u.samples_per_s) }),
      ui.el('td', { class: 'num', title: u.cosine ? `cosine ${u.cosine.toFixed(3)}, norm ratio ${(u.norm_ratio || 0).toFixed(2)}` : '',
        text: u.score || u.cosine ? (u.score || 0).toFixed(2) : '–' }))));
  }

  // ---- actions ------------------------------------------------------------------
  function controls() {
    ui.$('picker').addEventListener('change', (e) => load(e.target.value).catch((err) => problem(err.message)));
    ui.$('stop').addEventListener('click', async () => {
      if (!confirm(`Stop run "${D.run.name}"? Connected tabs are told the run is over.`)) return;
      try {
        await api('POST', `/api/runs/${encodeURIComponent(D.runId)}/stop`);
        await reload();
      } catch (e) { problem(e.message); }
    });
    ui.$('copy').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText(ui.$('join-url').textContent));
    ui.$('token-save').addEventListener('click', () => {
      sessionStorage.setItem('qflare.admin', ui.$('token-input').value.trim());
      location.reload();
    });
    ui.$('run-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      const cfg = {};
      for (const [k, v] of f.entries()) {
        if (v === '') continue;
        const input = e.target.elements[k];
        cfg[k] = k === 'public' ? v === 'true' : input.type === 'number' ? Number(v) : v;
      }
      ui.setText('form-status', 'Starting…');
      try {
        const run = await api('POST', '/api/runs', cfg);
        ui.setText('form-status', `Started ${run.id}.`);
        ui.$('new-run').open = false;
        await loadRuns(run.id);
      } catch (err) {
        ui.setText('form-status', err.message);
      }
    });
  }

  // The form leaves batch and learning rate empty unless a person types one:
  // the server then uses the model's defaults, which its placeholders show.
  async function formDefaults() {
    const models = (await api('GET', '/api/info')).models || {};
    const f = ui.$('run-form').elements;
    const show = () => {
      const d = models[f.model.value];
      f.batch.placeholder = d ? `${d.batch} (the model's default)` : "model's default";
      f.lr.placeholder = d ? `${d.lr} (the model's default)` : "model's default";
    };
    f.model.addEventListener('change', show);
    show();
  }

  async function main() {
    ui.$('need-token').classList.toggle('hidden', !!token());
    controls();
    formDefaults().catch((e) => problem(e.message));
    charts();
    setInterval(() => { if (D.feed === 'live') renderLanes(); }, 1000); // bars of tasks in flight grow
    try {
      await loadRuns();
    } catch (e) {
      problem(e.message);
    }
  }

  main();
})();
