// Small helpers both pages use: formatting, DOM building and uPlot charts
// that follow their container's width.
'use strict';

const ui = (() => {
  function bytes(n) {
    if (!(n >= 0)) return '–';
    const u = ['B', 'KB', 'MB', 'GB'];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + ' ' + u[i];
  }

  function num(n, digits = 0) {
    if (n === undefined || n === null || !isFinite(n)) return '–';
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  function pct(f, digits = 1) {
    if (f === undefined || f === null || !isFinite(f)) return '–';
    return (100 * f).toFixed(digits) + ' %';
  }

  function secs(s) {
    if (!(s >= 0) || !isFinite(s)) return '–';
    if (s < 1) return '< 1 s';
    if (s < 90) return Math.round(s) + ' s';
    return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  }

  function ago(t) {
    if (!t) return '–';
    const s = (Date.now() - new Date(t).getTime()) / 1000;
    if (s < 5) return 'just now';
    return secs(s) + ' ago';
  }

  // el('div', {class: 'x', text: 'hi'}, child, ...)
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function $(id) { return document.getElementById(id); }

  function setText(id, v) {
    const e = $(id);
    if (e && e.textContent !== String(v)) e.textContent = v;
  }

  // setBar(id, fraction | null (busy) | undefined (idle), label)
  function setBar(id, f, label) {
    const e = $(id);
    if (!e) return;
    const fill = e.querySelector('.fill');
    e.classList.toggle('busy', f === null);
    e.classList.toggle('done', f >= 1);
    fill.style.transition = f > 0 ? '' : 'none'; // a reset jumps back
    fill.style.width = f > 0 ? Math.min(100, 100 * f).toFixed(1) + '%' : '0';
    if (label !== undefined) e.querySelector('.v').textContent = label;
  }

  const palette = ['#2f6fed', '#16a34a', '#c27803', '#9333ea', '#dc2626', '#0891b2'];

  // chart(target, {series: [{label, scale?, fmt?}], scales?, height?, x?})
  // returns {set(data)} where data = [xs, ys1, ys2, ...].
  function chart(target, opt) {
    const height = opt.height || 220;
    const series = [{ label: opt.x || 'round' }].concat(opt.series.map((s, i) => ({
      label: s.label,
      scale: s.scale || 'y',
      stroke: s.color || palette[i % palette.length],
      width: 2,
      points: { show: true, size: 5 },
      value: (u, v) => (v === null || v === undefined ? '–' : (s.fmt ? s.fmt(v) : v.toFixed(3))),
      spanGaps: true,
    })));
    const axes = [{ label: opt.x || 'round', size: 36, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }];
    const scales = { x: { time: false } };
    const used = [...new Set(opt.series.map((s) => s.scale || 'y'))];
    used.forEach((sc, i) => {
      const def = (opt.scales || {})[sc] || {};
      scales[sc] = def.range ? { range: def.range }
        : def.zero ? { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } : { auto: true };
      axes.push({ scale: sc, side: i === 0 ? 3 : 1, label: def.label, size: 52,
        values: def.fmt ? (u, vals) => vals.map(def.fmt) : undefined, grid: { show: i === 0 } });
    });
    let data = [[]].concat(opt.series.map(() => []));
    const width = () => Math.max(200, target.clientWidth || 300);
    const u = new uPlot({ width: width(), height, series, axes, scales, legend: { live: true },
      cursor: { drag: { x: false, y: false } } }, data, target);
    new ResizeObserver(() => u.setSize({ width: width(), height })).observe(target);
    return {
      set(d) { data = d; u.setData(d); },
      plot: u,
    };
  }

  return { bytes, num, pct, secs, ago, el, $, setText, setBar, chart };
})();
