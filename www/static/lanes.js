// The dashboard's client timeline and participation per profile: one lane
// per client with a bar for each task, from the moment the server sent it
// to the moment its update arrived, coloured by the device profile the
// client emulates; idle time is the gap between bars. The dashboard gathers
// the tasks (from the stored updates and the live event feed) and calls
// draw and participation.
'use strict';

const lanes = (() => {
  // Profiles in the order lanes are sorted, fastest first (shared/profile).
  const order = ['desktop', 'laptop', 'phone-high', 'phone-low', 'iot', ''];
  const colors = {
    desktop: '#2f6fed', laptop: '#16a34a', 'phone-high': '#9333ea', 'phone-low': '#c27803', iot: '#0891b2', '': '#8a94a6',
  };
  const spare = ['#db2777', '#65a30d', '#7c3aed', '#ea580c'];

  function color(profile) {
    if (colors[profile]) return colors[profile];
    let h = 0;
    for (const ch of profile) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    return spare[h % spare.length];
  }

  const name = (profile) => profile || 'no profile';
  const rank = (profile) => (order.includes(profile) ? order.indexOf(profile) : order.length);

  // time parses an RFC 3339 time (Go writes up to nanoseconds) to ms since
  // the epoch; NaN for none.
  function time(s) {
    if (!s) return NaN;
    const t = Date.parse(String(s).replace(/(\.\d{3})\d+/, '$1'));
    return t > 0 ? t : NaN;
  }

  // draw fills box with one lane per client. tasks: [{client, profile,
  // from, to (ms), state: 'ok' | 'excluded' | 'bad' | 'open', title}];
  // ticks: [{at (ms), label}] (steps or rounds closing); clients: Map of id
  // → {slice} orders the lanes of one profile; from and to bound the time
  // axis; tickName says what a tick is ("server step", "round closed").
  function draw(box, { tasks, ticks, from, to, clients, legend, tickName }) {
    if (!tasks.length || !(to > from)) {
      box.replaceChildren(ui.el('p', { class: 'small muted', text: 'No tasks yet: bars appear as clients get work.' }));
      legend.replaceChildren();
      return;
    }
    const x = (t) => (100 * (Math.min(Math.max(t, from), to) - from) / (to - from));
    const byClient = new Map();
    for (const t of tasks) {
      if (!byClient.has(t.client)) byClient.set(t.client, { id: t.client, profile: t.profile || '', tasks: [] });
      const lane = byClient.get(t.client);
      lane.tasks.push(t);
      if (t.profile) lane.profile = t.profile;
    }
    const slice = (id) => ((clients.get(id) || {}).slice ?? 1e9);
    const rows = [...byClient.values()].sort((a, b) => rank(a.profile) - rank(b.profile) || slice(a.id) - slice(b.id) || (a.id < b.id ? -1 : 1));
    const marks = ticks.filter((k) => k.at >= from && k.at <= to);
    const track = (lane) => ui.el('div', { class: 'track' },
      ...marks.map((k) => {
        const m = ui.el('span', { class: 'tick', title: k.label });
        m.style.left = x(k.at).toFixed(2) + '%';
        return m;
      }),
      ...lane.tasks.map((t) => {
        const bar = ui.el('span', { class: 'task ' + t.state, title: t.title });
        bar.style.left = x(t.from).toFixed(2) + '%';
        bar.style.width = (x(t.to) - x(t.from)).toFixed(2) + '%';
        bar.style.background = color(lane.profile);
        return bar;
      }));
    const axis = ui.el('div', { class: 'lane axis' }, ui.el('div', { class: 'who small muted', text: new Date(from).toLocaleTimeString() }),
      ui.el('div', { class: 'track' }, ...[0, 0.25, 0.5, 0.75, 1].map((f) => {
        const s = ui.el('span', { class: 'at small muted', text: '+' + ui.secs(f * (to - from) / 1000).replace('< 1 s', '0 s') });
        s.style.left = (100 * f) + '%';
        return s;
      })));
    box.replaceChildren(...rows.map((lane) => ui.el('div', { class: 'lane', 'data-client': lane.id, 'data-profile': lane.profile },
      ui.el('div', { class: 'who' }, ui.el('span', { class: 'mono', text: lane.id, title: lane.id }),
        ui.el('span', { class: 'small muted', text: `${name(lane.profile)} · ${lane.tasks.filter((t) => t.state !== 'open').length} tasks` })),
      track(lane))), axis);
    const shown = [...new Set(rows.map((r) => r.profile))].sort((a, b) => rank(a) - rank(b));
    legend.replaceChildren(...shown.map((p) => {
      const sw = ui.el('span', { class: 'swatch' });
      sw.style.background = color(p);
      return ui.el('span', { class: 'key', 'data-profile': p }, sw, name(p));
    }), ui.el('span', { class: 'key' }, ui.el('span', { class: 'swatch open' }), 'training now'),
    ui.el('span', { class: 'key' }, ui.el('span', { class: 'swatch bad' }), 'refused'),
    marks.length ? ui.el('span', { class: 'key' }, ui.el('span', { class: 'swatch tick' }), tickName) : null);
  }

  // participation fills tbody with a row per profile: clients, accepted
  // updates and their share, mean time from task to update, and (async)
  // mean and largest staleness. updates: [{client, profile, accepted,
  // staleness, task_at, received_at}]; profileOf names a client's profile.
  function participation(tbody, updates, clients, profileOf) {
    const by = new Map();
    const row = (p) => {
      if (!by.has(p)) by.set(p, { profile: p, clients: new Set(), accepted: 0, stale: 0, staleMax: 0, secs: 0, timed: 0 });
      return by.get(p);
    };
    for (const [id] of clients) row(profileOf(id)).clients.add(id);
    let total = 0;
    for (const u of updates) {
      if (!u.accepted) continue;
      const r = row(u.profile || profileOf(u.client));
      r.clients.add(u.client);
      r.accepted++;
      total++;
      r.stale += u.staleness || 0;
      r.staleMax = Math.max(r.staleMax, u.staleness || 0);
      const d = time(u.received_at) - time(u.task_at);
      if (d >= 0) {
        r.secs += d / 1000;
        r.timed++;
      }
    }
    const rows = [...by.values()].sort((a, b) => rank(a.profile) - rank(b.profile));
    tbody.replaceChildren(...rows.map((r) => {
      const sw = ui.el('span', { class: 'swatch' });
      sw.style.background = color(r.profile);
      const share = total ? r.accepted / total : 0;
      const bar = ui.el('span', { class: 'share' });
      bar.style.width = (100 * share).toFixed(1) + '%';
      bar.style.background = color(r.profile);
      return ui.el('tr', { 'data-profile': r.profile },
        ui.el('td', {}, sw, ' ', name(r.profile)),
        ui.el('td', { class: 'num', text: r.clients.size }),
        ui.el('td', { class: 'num', text: r.accepted }),
        ui.el('td', { class: 'sharecell', title: ui.pct(share) }, ui.el('span', { class: 'sharebox' }, bar), ui.el('span', { class: 'small muted', text: ' ' + ui.pct(share, 0) })),
        ui.el('td', { class: 'num', text: r.timed ? (r.secs / r.timed).toFixed(2) + ' s' : '–' }),
        ui.el('td', { class: 'num async-only', text: r.accepted ? (r.stale / r.accepted).toFixed(2) : '–' }),
        ui.el('td', { class: 'num async-only', text: r.accepted ? r.staleMax : '–' }));
    }));
  }

  return { draw, participation, color, time };
})();
