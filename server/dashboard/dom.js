// A tiny DOM builder: text always goes in as text nodes, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function loading(what) {
  return h('p', { class: 'muted loading' }, h('span', { class: 'spinner' }), `Loading ${what}…`);
}

export function errorBox(e) {
  return h('div', { class: 'notice error', role: 'alert' }, e && e.message ? e.message : String(e));
}

export function empty(...children) {
  return h('div', { class: 'empty' }, ...children);
}

export function badge(state) {
  return h('span', { class: `badge ${state}` }, state);
}

export function figure(label, value, id) {
  return h('div', { class: 'figure' }, h('div', { class: 'v', id }, value), h('div', { class: 'k' }, label));
}

export function table(headers, rows, attrs = {}) {
  return h('table', { class: 'data', ...attrs },
    h('thead', {}, h('tr', {}, headers.map((x) => (typeof x === 'string' ? h('th', {}, x) : x)))),
    h('tbody', {}, rows));
}

export function num(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function pct(x, digits = 1) {
  if (x === null || x === undefined) return '–';
  return `${(x * 100).toFixed(digits)}%`;
}

export function when(ts) {
  if (!ts) return '–';
  const d = new Date(ts);
  return d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

export function compact(n) {
  if (n === null || n === undefined) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}
