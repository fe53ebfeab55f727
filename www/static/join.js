// The join page: this tab becomes a participant. The Go program (client.wasm)
// runs in Web Workers (worker.js): one lead worker that talks to the server
// and trains, and helper workers that train shards of the tab's data for it.
// This script only starts them, shows what they report and keeps the tab's
// client id. In an async run (FedBuff) the page shows the model version
// each task trains and how stale each accepted update was instead of round
// numbers. window.qflare exposes the page's state (tests read it).
'use strict';

(() => {
  // A minimal module using a SIMD128 instruction (v128.const, i8x16.popcnt):
  // it validates only where the engine supports SIMD.
  const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
  let kernel = '';
  const params = new URLSearchParams(location.search);
  const S = (window.qflare = {
    state: 'starting', conn: 'starting', runId: '', run: null, clientId: '', round: 0,
    rounds: {}, events: [], workers: 0, speed: 0, samples: 0, labels: null, local: false,
    stopped: null, ready: false, participants: 0, profile: null, emulating: null,
    // async runs: tasks (newest last), the version being trained, and the
    // global accuracy of each model version.
    async: false, tasks: [], version: null, versions: {},
  });
  let token = '', shape = null, modulePromise = null;
  let lead = null, helpers = [], stopWaiters = [], currentOwn = null;
  let accChart = null;

  const headlines = {
    connecting: 'Connecting to the server…', joined: 'Joined the run', 'fetching data': 'Downloading your data slice…',
    waiting: 'Waiting for the next round', 'downloading model': 'Receiving the model', training: 'Training',
    uploading: 'Sending the update', done: 'The run is over', offline: 'Connection lost',
  };

  // ---- client id: one per run and tab, kept in localStorage -------------
  // A tab claims one of the run's stored ids with a lease it renews, so two
  // tabs of one browser never join as the same client, and a reload keeps
  // its id.
  const ids = (() => {
    const leaseMS = 90000;
    let tab = sessionStorage.getItem('qflare.tab');
    if (!tab) {
      tab = Math.random().toString(36).slice(2) + Date.now().toString(36);
      sessionStorage.setItem('qflare.tab', tab);
    }
    const listKey = (run) => 'qflare.clients.' + run;
    const leaseKey = (run, id) => `qflare.lease.${run}.${id}`;
    // The secret the server gave with the id: a hello that claims the id
    // must show it, so nobody who merely learns the id can take its place.
    const secretKey = (run, id) => `qflare.secret.${run}.${id}`;
    const read = (k, d) => { try { return JSON.parse(localStorage.getItem(k)) ?? d; } catch (e) { return d; } };
    let held = '', renewed = 0;
    function claim(run) {
      for (const id of read(listKey(run), [])) {
        const l = read(leaseKey(run, id), null);
        if (!l || l.tab === tab || Date.now() - l.t > leaseMS) {
          localStorage.setItem(leaseKey(run, id), JSON.stringify({ tab, t: Date.now() }));
          held = id;
          return id;
        }
      }
      return '';
    }
    function keep(run, id, secret) {
      const list = read(listKey(run), []);
      if (!list.includes(id)) list.push(id);
      localStorage.setItem(listKey(run), JSON.stringify(list.slice(-50)));
      if (secret) localStorage.setItem(secretKey(run, id), JSON.stringify(secret));
      held = id;
      renew(run, true);
    }
    const secret = (run, id) => (id ? read(secretKey(run, id), '') : '');
    function renew(run, now) {
      if (!held || (!now && Date.now() - renewed < 5000)) return;
      renewed = Date.now();
      localStorage.setItem(leaseKey(run, held), JSON.stringify({ tab, t: renewed }));
    }
    function release(run) {
      if (!held) return;
      const l = read(leaseKey(run, held), null);
      if (l && l.tab === tab) localStorage.removeItem(leaseKey(run, held));
    }
    return { claim, keep, renew, release, secret };
  })();

  // ---- helpers ------------------------------------------------------------
  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
    return body;
  }

  function problem(msg, kind = 'bad') {
    const p = ui.$('problem');
    p.className = 'note ' + kind + (msg ? '' : ' hidden');
    p.textContent = msg || '';
  }

  function setConn(state, cls) {
    S.conn = state;
    const e = ui.$('conn');
    e.textContent = state;
    e.className = 'pill ' + (cls || '');
  }

  function workerCount() {
    const asked = parseInt(params.get('workers'), 10);
    if (asked >= 1) return Math.min(asked, 32);
    // One per core, leaving nothing idle, but more than 8 rarely helps a
    // model this size (the shards get small).
    return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8));
  }

  function device() {
    const uad = navigator.userAgentData;
    return {
      user_agent: navigator.userAgent,
      platform: (uad && uad.platform) || navigator.platform || '',
      cores: navigator.hardwareConcurrency || 0,
      memory_gb: navigator.deviceMemory || 0,
    };
  }

  // ---- workers ------------------------------------------------------------
  async function start(own) {
    if (lead) await stop();
    currentOwn = own;
    S.stopped = null;
    S.local = !!own;
    problem('');
    ui.$('leave').textContent = 'Leave';
    let module = null;
    try { module = await modulePromise; } catch (e) { /* each worker fetches it */ }
    const n = workerCount();
    S.workers = n;
    S.kernel = module ? kernel : 'scalar';
    ui.setText('f-workers', (n === 1 ? '1 Web Worker' : `${n} Web Workers`) + ` · ${S.kernel} GEMM`);
    const ports = [];
    helpers = [];
    for (let i = 1; i < n; i++) {
      const w = new Worker('/static/worker.js');
      const ch = new MessageChannel();
      w.postMessage({ type: 'boot', role: 'helper', module, port: ch.port1 }, [ch.port1]);
      w.onerror = (e) => console.warn('helper worker failed', e.message);
      w.onmessage = (e) => { if (e.data && e.data.type === 'log') (console[e.data.level] || console.log)('[helper] ' + e.data.text); };
      ports.push(ch.port2);
      helpers.push(w);
    }
    lead = new Worker('/static/worker.js');
    lead.onmessage = (e) => onWorker(e.data);
    lead.onerror = (e) => problem('The training worker failed: ' + (e.message || 'unknown error'));
    const wsURL = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws';
    const clientId = S.clientId || ids.claim(S.runId);
    lead.postMessage({
      type: 'boot', role: 'lead', module, run: S.runId, token, client_id: clientId, secret: ids.secret(S.runId, clientId),
      ws_url: wsURL, origin: location.origin, device: device(), ports, profile: params.get('profile') || '',
      own: own ? own.own : null, shape: shape ? { dataset: S.run.config.dataset, ...shape } : null,
    }, ports);
    setConn('connecting', 'warn');
  }

  // stop asks the lead to say bye and waits (briefly) for it to finish.
  function stop() {
    if (!lead) return Promise.resolve();
    const w = lead;
    return new Promise((resolve) => {
      stopWaiters.push(resolve);
      w.postMessage({ type: 'leave' });
      setTimeout(() => { if (lead === w) terminate(); }, 3000);
    });
  }

  function terminate() {
    emulated(null);
    if (lead) lead.terminate();
    helpers.forEach((w) => w.terminate());
    lead = null;
    helpers = [];
    stopWaiters.splice(0).forEach((f) => f());
  }

  function onWorker(m) {
    ids.renew(S.runId);
    switch (m.type) {
      case 'event': onEvent(JSON.parse(m.json)); break;
      case 'conn':
        if (m.state === 'connected') {
          setConn('connected', 'good');
          problem('');
        }
        else if (m.state === 'connecting') setConn(m.attempt > 1 ? `reconnecting (try ${m.attempt})` : 'connecting', 'warn');
        else if (m.state === 'retrying') {
          setConn(`offline · retry in ${ui.secs(m.retry_ms / 1000)}`, 'bad');
          problem(m.error ? 'Connection lost: ' + m.error : '', 'warn');
        }
        break;
      case 'profile':
        S.profile = { name: m.name, gflops: m.gflops, down_mbps: m.down_mbps, up_mbps: m.up_mbps, rtt_ms: m.rtt_ms, drop: m.drop };
        ui.setText('f-profile', `${m.name} · ${m.gflops} GFLOPS · ${m.down_mbps}/${m.up_mbps} Mbit/s down/up · ${m.rtt_ms} ms`);
        break;
      case 'transfer':
        if (m.what === 'slice') ui.setBar('b-slice', m.total ? m.done / m.total : null, `${ui.bytes(m.done)}${m.total ? ' of ' + ui.bytes(m.total) : ''}`);
        if (m.what === 'upload') ui.setBar('b-upload', m.done / m.total, `${ui.bytes(m.done)} of ${ui.bytes(m.total)}`);
        break;
      case 'stopped':
        S.stopped = { reason: m.reason, code: m.code || '', error: !!m.error };
        setConn(m.code === 'run_end' ? 'run over' : m.code === 'cannot_join' ? 'not joined' : 'stopped', m.error ? 'bad' : '');
        ui.setText('headline', m.code === 'left' ? 'You left the run' : m.code === 'run_end' ? 'The run is over'
          : m.code === 'cannot_join' ? 'Cannot join' : 'Stopped');
        ui.setText('subline', m.reason);
        if (m.error) problem(m.reason);
        ui.$('leave').textContent = 'Join again';
        terminate();
        if (m.code === 'run_end' && !S.local && !location.pathname.startsWith('/join/')) followNextRun();
        break;
      case 'log': (console[m.level] || console.log)('[worker] ' + m.text); break;
      case 'exited':
        if (!S.stopped) problem('The training program stopped unexpectedly; the browser console says why.');
        break;
    }
  }

  // followNextRun: a tab that joined from the root URL moves on to the next
  // public run when its run ends (serve --demo starts one by itself), by
  // reloading the page, which joins it. Tabs on their own data stay, so
  // their files are not lost.
  function followNextRun() {
    S.following = true;
    const poll = async () => {
      if (lead) return; // the person joined again by hand
      try {
        const info = await getJSON('/api/info');
        if (info.public_run && info.public_run.id !== S.runId) {
          location.reload();
          return;
        }
      } catch (e) { /* the server may be restarting */ }
      setTimeout(poll, 3000);
    };
    ui.setText('subline', ui.$('subline').textContent + ' This tab joins the next run when it starts.');
    setTimeout(poll, 3000);
  }

  // emulated counts down the time an emulated device (?profile=) still
  // takes for a step of the round: "emulating phone-low: 3.2 s of compute
  // left". null stops it.
  let emuTimer = null;
  function emulated(e) {
    clearInterval(emuTimer);
    emuTimer = null;
    S.emulating = null;
    if (!e) return;
    const end = Date.now() + e.wait_s * 1000;
    const bar = { download: 'b-model', compute: 'b-train', upload: 'b-upload' }[e.phase];
    const tick = () => {
      const left = Math.max(0, (end - Date.now()) / 1000);
      S.emulating = { profile: e.profile, phase: e.phase, left };
      const text = `emulating ${e.profile}: ${left.toFixed(1)} s of ${e.phase} left`;
      ui.setText('subline', text);
      if (bar) ui.setBar(bar, e.phase === 'compute' ? 1 : null, text);
      if (left <= 0) emulated(null);
    };
    tick();
    if (S.emulating) emuTimer = setInterval(tick, 200);
  }

  function onEvent(e) {
    S.events.push(e);
    if (S.events.length > 300) S.events.splice(0, 100);
    const r = S.async ? task(e) : e.round ? round(e.round) : null;
    if (emuTimer && !['emulate', 'state', 'progress'].includes(e.type)) emulated(null);
    const working = (state) => e.round && ['downloading model', 'training', 'uploading'].includes(state);
    switch (e.type) {
      case 'state':
        S.state = e.state;
        if (e.round) S.round = e.round;
        ui.setText('headline', (!working(e.state) ? '' : S.async ? `Version ${S.version}: ` : `Round ${e.round}: `) +
          (S.async && e.state === 'waiting' ? 'Waiting for a task' : headlines[e.state] || e.state));
        if (e.state === 'offline') setConn('offline', 'bad');
        break;
      case 'welcome':
        S.clientId = e.client_id;
        ids.keep(S.runId, e.client_id, e.secret);
        ui.setText('f-client', e.client_id);
        if (e.params) ui.setText('f-model', `${e.model} · ${ui.num(e.params)} parameters`);
        break;
      case 'slice':
        S.samples = e.samples;
        S.labels = e.label_counts;
        S.local = !!e.local_data;
        S.ready = true;
        showData(e);
        break;
      case 'wait':
        ui.setText('subline', e.message || 'Not selected for this round; the next one may pick this tab.');
        break;
      case 'round_start':
        S.round = e.round;
        if (S.async) {
          S.version = e.model_version || 0;
          ui.setText('headline', `Version ${S.version}: ${headlines['downloading model']}`);
          ui.setText('subline', `Training model version ${S.version} (the server is at step ${e.round}).`);
        } else {
          ui.setText('subline', `Selected for round ${e.round}.`);
        }
        ui.setBar('b-model', null, 'receiving…');
        ui.setBar('b-train', 0, '–');
        ui.setBar('b-upload', 0, '–');
        break;
      case 'download':
        ui.setBar('b-model', 1, ui.bytes(e.bytes));
        break;
      case 'emulate':
        emulated(e);
        break;
      case 'progress': {
        const f = ((e.epoch - 1) * e.batches + e.batch) / (e.epochs * e.batches);
        ui.setBar('b-train', f, `epoch ${e.epoch}/${e.epochs} · batch ${e.batch}/${e.batches} · ETA ${ui.secs(e.eta_s || 0)}`);
        setSpeed(e.samples_per_s);
        if (isFinite(e.loss)) ui.setText('s-loss', e.loss.toFixed(3));
        break;
      }
      case 'upload':
        if (!r) break;
        Object.assign(r, { loss: e.local_loss, acc: e.local_accuracy, speed: e.samples_per_s, bytes: e.bytes, result: 'sent' });
        setSpeed(e.samples_per_s);
        ui.setText('s-loss', (e.local_loss || 0).toFixed(3));
        ui.setText('s-acc', ui.pct(e.local_accuracy));
        ui.setBar('b-train', 1);
        break;
      case 'accepted':
        if (S.async) {
          const stale = staleText(e.staleness || 0);
          if (r) Object.assign(r, { result: 'accepted', staleness: e.staleness || 0 });
          ui.setText('subline', `Your update from version ${r ? r.version : S.version} was accepted · ${stale}.`);
          break;
        }
        if (r) r.result = 'accepted';
        ui.setText('subline', `Your update for round ${e.round} was accepted; waiting for the round to close.`);
        break;
      case 'rejected':
        if (r) r.result = 'rejected: ' + (e.message || e.code);
        ui.setText('subline', S.async ? `Your update from version ${r ? r.version : S.version} was not taken: ${e.message || e.code}`
          : `Your update for round ${e.round} was not taken: ${e.message || e.code}`);
        break;
      case 'round_end':
        if (S.async) {
          versionAccuracy(e.model_version, e.test_accuracy || 0);
          break;
        }
        if (!r) break;
        r.global = e.test_accuracy || 0;
        ui.setText('s-global', ui.pct(r.global));
        break;
      case 'run_end':
        for (const t of S.tasks) if (!t.result) t.result = 'run over first';
        if (S.async) renderRounds();
        ui.setText('subline', `${e.message || 'The run is over.'} Final accuracy ${ui.pct(e.test_accuracy)}.`);
        break;
      case 'error':
        ui.setText('subline', e.message);
        break;
    }
    if (r) renderRounds();
  }

  function round(n) {
    return (S.rounds[n] = S.rounds[n] || { round: n });
  }

  // task returns the async task an event is about: round_start begins one
  // (a client trains one task at a time, and a step can hand the same
  // client two tasks of one version); the events after it are about it.
  function task(e) {
    if (e.type === 'round_start') {
      S.tasks.push({ n: S.tasks.length + 1, step: e.round, version: e.model_version || 0 });
      if (S.tasks.length > 200) S.tasks.splice(0, 50);
    }
    const t = S.tasks[S.tasks.length - 1];
    return t && e.round === t.step && e.type !== 'round_end' ? t : null;
  }

  function staleText(n) {
    return `${n} step${n === 1 ? '' : 's'} stale`;
  }

  // versionAccuracy notes a model version's global test accuracy (async).
  function versionAccuracy(v, acc) {
    if (!(v > 0)) return;
    S.versions[v] = acc;
    ui.setText('s-global', ui.pct(acc));
    renderRounds();
  }

  function setSpeed(v) {
    if (!(v > 0)) return;
    S.speed = v;
    ui.setText('s-speed', ui.num(v));
  }

  function showData(e) {
    ui.setText('d-source', e.local_data ? 'Your own data (stays in this tab)' : "The server's data slice for this tab");
    ui.setText('d-samples', `${ui.num(e.samples)} samples`);
    if (!e.local_data) ui.setBar('b-slice', 1);
    else ui.setBar('b-slice', undefined, 'not needed: your own data');
    const box = ui.$('d-labels');
    box.replaceChildren();
    const counts = e.label_counts || [];
    const top = Math.max(1, ...counts);
    const names = (shape && shape.names) || null;
    counts.forEach((n, i) => {
      const bar = ui.el('div', { class: 'lb' });
      bar.style.width = (100 * n / top).toFixed(1) + '%';
      box.append(ui.el('span', { class: 'mono', text: names ? names[i].slice(0, 5) : i, title: names ? names[i] : null }),
        ui.el('div', {}, bar), ui.el('span', { class: 'n', text: n }));
    });
  }

  function renderRounds() {
    if (S.async) {
      renderTasks();
      return;
    }
    const rows = Object.values(S.rounds).sort((a, b) => b.round - a.round);
    const tb = ui.$('rounds').tBodies[0];
    tb.replaceChildren(...rows.slice(0, 30).map((r) => ui.el('tr', {},
      ui.el('td', { text: r.round }),
      ui.el('td', { class: 'num', text: r.loss !== undefined ? r.loss.toFixed(3) : '–' }),
      ui.el('td', { class: 'num', text: ui.pct(r.acc) }),
      ui.el('td', { class: 'num', text: ui.num(r.speed) }),
      ui.el('td', { class: 'num', text: r.bytes ? ui.bytes(r.bytes) : '–' }),
      ui.el('td', { class: 'num', text: ui.pct(r.global) }),
      ui.el('td', { class: r.result === 'accepted' ? 'ok' : (r.result || '').startsWith('rejected') ? 'bad' : '', text: r.result || (r.global !== undefined ? 'not selected' : '–') }))));
    if (accChart) {
      const xs = Object.keys(S.rounds).map(Number).sort((a, b) => a - b);
      accChart.set([xs, xs.map((x) => S.rounds[x].global ?? null), xs.map((x) => S.rounds[x].acc ?? null)]);
    }
  }

  // renderTasks lists an async run's tasks, newest first: the version
  // trained, the local result, the global accuracy of that version and how
  // stale the update was when the server took it.
  function renderTasks() {
    const tb = ui.$('rounds').tBodies[0];
    tb.replaceChildren(...S.tasks.slice(-30).reverse().map((t) => ui.el('tr', { 'data-version': t.version },
      ui.el('td', { text: t.version }),
      ui.el('td', { class: 'num', text: t.loss !== undefined ? t.loss.toFixed(3) : '–' }),
      ui.el('td', { class: 'num', text: ui.pct(t.acc) }),
      ui.el('td', { class: 'num', text: ui.num(t.speed) }),
      ui.el('td', { class: 'num', text: t.bytes ? ui.bytes(t.bytes) : '–' }),
      ui.el('td', { class: 'num', text: ui.pct(S.versions[t.version]) }),
      ui.el('td', { class: t.result === 'accepted' ? 'ok' : (t.result || '').startsWith('rejected') ? 'bad' : '',
        text: t.result === 'accepted' ? `accepted · ${staleText(t.staleness)}` : t.result || (t === S.tasks[S.tasks.length - 1] ? 'training' : '–') }))));
    if (accChart) {
      const local = {};
      for (const t of S.tasks) if (t.acc !== undefined) local[t.version] = t.acc;
      const xs = [...new Set([...Object.keys(S.versions), ...Object.keys(local)].map(Number))].sort((a, b) => a - b);
      accChart.set([xs, xs.map((x) => S.versions[x] ?? null), xs.map((x) => local[x] ?? null)]);
    }
  }

  // ---- the run: details, history and live feed ----------------------------
  async function loadRun() {
    const m = location.pathname.match(/^\/join\/([^/]+)/);
    if (m) {
      S.runId = decodeURIComponent(m[1]);
      token = params.get('token') || '';
    } else {
      // The root URL joins the public run; between two demo runs (serve
      // --demo starts the next one by itself) there is none for a moment.
      let info = await getJSON('/api/info');
      while (!info.public_run) {
        ui.setText('headline', 'Waiting for the next run');
        ui.setText('subline', 'There is no public run on this server right now; this tab joins the next one when it starts.');
        setConn('waiting', 'warn');
        await new Promise((r) => setTimeout(r, 3000));
        info = await getJSON('/api/info');
      }
      S.runId = info.public_run.id;
      token = info.public_run.token;
    }
    S.run = await getJSON('/api/runs/' + encodeURIComponent(S.runId));
    const c = S.run.config;
    shape = ownData.shapes[c.dataset] || null;
    ui.setText('run-name', S.run.name);
    ui.setText('f-name', S.run.name);
    ui.setText('f-model', `${c.model} on ${c.dataset}`);
    S.async = c.mode === 'async';
    if (S.async) {
      ui.setText('f-round-k', 'Model version');
      ui.setText('acc-title', 'Accuracy per model version');
      ui.setText('rounds-k', 'Version');
      ui.setText('global-k', "Version's global accuracy");
    }
    showRound(S.run.current_round || 0, S.run.model_version || 0);
    if (shape) ui.setText('own-shape', `This run trains ${c.model} on ${c.dataset}: images of ${shape.w}×${shape.h}` +
      (shape.c === 1 ? ' grayscale' : ' color') + `, ${shape.classes} classes.`);
    document.title = `QFLARE · ${S.run.name}`;
    try {
      for (const r of await getJSON(`/api/runs/${encodeURIComponent(S.runId)}/rounds`)) {
        if (r.status !== 'aggregated') continue;
        if (S.async) S.versions[r.model_version] = r.test_accuracy;
        else round(r.round).global = r.test_accuracy;
      }
    } catch (e) { /* history is optional */ }
    renderRounds();
  }

  // showRound shows where the run is: the round, or an async run's model
  // version and server step.
  function showRound(round, version, phase) {
    const n = S.run.config.rounds;
    ui.setText('f-round', (S.async ? `version ${version || 0} · step ${round} of ${n}` : `${round} of ${n}`) + (phase ? ` · ${phase}` : ''));
  }

  function follow() {
    const clients = new Map();
    const es = new EventSource(`/api/runs/${encodeURIComponent(S.runId)}/events`);
    const participants = () => {
      S.participants = [...clients.values()].filter(Boolean).length;
      ui.setText('f-participants', `${S.participants} connected`);
    };
    es.addEventListener('snapshot', (e) => {
      const v = JSON.parse(e.data);
      clients.clear();
      (v.clients || []).forEach((c) => clients.set(c.id, c.connected));
      participants();
      showRound(v.round, v.model_version, v.phase);
    });
    es.addEventListener('client', (e) => {
      const c = JSON.parse(e.data).data;
      clients.set(c.id, c.connected);
      participants();
    });
    es.addEventListener('round_started', (e) => {
      const r = JSON.parse(e.data).data;
      showRound(r.round, r.base_version);
    });
    // The stream's last event: the run is over. Close it instead of letting
    // the browser reconnect to replay the end.
    es.addEventListener('end', () => es.close());
    es.addEventListener('round_ended', (e) => {
      const r = JSON.parse(e.data).data;
      if (!r.failed && S.async) {
        versionAccuracy(r.model_version, r.test_accuracy);
      } else if (!r.failed) {
        round(r.round).global = r.test_accuracy;
        ui.setText('s-global', ui.pct(r.test_accuracy));
        renderRounds();
      }
    });
  }

  // ---- own data -------------------------------------------------------------
  function ownControls() {
    const status = (t, cls) => { const s = ui.$('own-status'); s.textContent = t; s.className = 'small ' + (cls || ''); };
    async function use(read) {
      if (!shape) { status('This run\'s data set is not one this page can read.', 'bad'); return; }
      try {
        status('Reading your files…');
        const own = await read();
        status(`Training on ${own.summary}. Nothing of it is sent to the server.`, 'ok');
        ui.$('own-off').classList.remove('hidden');
        await start(own);
      } catch (e) {
        status(e.message, 'bad');
      }
    }
    ui.$('own-idx').addEventListener('change', (ev) => {
      const files = [...ev.target.files];
      if (files.length) use(() => ownData.fromIDX(files));
    });
    ui.$('own-dir').addEventListener('change', (ev) => {
      const files = [...ev.target.files];
      if (files.length) use(() => ownData.fromFolder(files, shape, (n, t) => status(`Decoding images: ${n} of ${t}…`)));
    });
    ui.$('own-off').addEventListener('click', () => {
      ui.$('own-off').classList.add('hidden');
      status('');
      start(null);
    });
  }

  async function main() {
    ui.$('leave').addEventListener('click', () => {
      if (lead) stop();
      else start(currentOwn);
    });
    addEventListener('pagehide', () => ids.release(S.runId));
    ownControls();
    try {
      await loadRun();
    } catch (e) {
      problem(e.message);
      ui.setText('headline', 'Cannot join');
      setConn('not joined', 'bad');
      return;
    }
    accChart = ui.chart(ui.$('acc-chart'), {
      x: S.async ? 'version' : 'round',
      series: [{ label: 'global accuracy', fmt: (v) => ui.pct(v) }, { label: 'local accuracy', fmt: (v) => ui.pct(v) }],
      scales: { y: { range: [0, 1], fmt: (v) => Math.round(v * 100) + '%' } }, height: 200,
    });
    renderRounds();
    follow();
    modulePromise = loadModule();
    if (params.get('data') === 'own') {
      ui.setText('headline', 'Choose your data to join');
      ui.setText('subline', 'This tab joins once you pick your own files below.');
      setConn('not joined');
      ui.$('leave').textContent = "Join with the server's data";
      ui.$('own-card').scrollIntoView();
      return;
    }
    start(null);
  }

  // loadModule compiles the client: the SIMD128 build (faster GEMM) where the
  // engine supports SIMD and the server has it, else the portable build.
  async function loadModule() {
    if (WebAssembly.validate(SIMD_PROBE) && params.get('simd') !== '0') {
      const res = await fetch('/static/client-simd.wasm');
      if (res.ok) {
        kernel = 'simd128';
        return WebAssembly.compileStreaming(res);
      }
    }
    kernel = 'scalar';
    return WebAssembly.compileStreaming(fetch('/static/client.wasm'));
  }

  main();
})();
