// The dashboard's shell: the token field, hash routing, and page lifecycles (each page gets a
// context whose polling stops when the user navigates away).

import { setToken, token } from '/ui/api.js';
import { clear, empty, errorBox, h, loading } from '/ui/dom.js';
import { disposeIn } from '/ui/charts.js';
import * as devices from '/ui/pages/devices.js';
import * as tables from '/ui/pages/tables.js';
import * as validation from '/ui/pages/validation.js';
import * as searches from '/ui/pages/searches.js';

// [pattern, nav section, page function]; `:name` segments are captured.
const ROUTES = [
  ['devices', 'devices', devices.list],
  ['devices/:id', 'devices', devices.detail],
  ['tables', 'tables', tables.list],
  ['tables/:device/:framework', 'tables', tables.heatmap],
  ['compare/:deviceA/:frameworkA/:deviceB/:frameworkB', 'tables', tables.compare],
  ['validation', 'validation', validation.list],
  ['validation/:device/:framework', 'validation', validation.detail],
  ['searches', 'searches', searches.list],
  ['searches/:id', 'searches', searches.detail],
];

const main = document.getElementById('main');
let generation = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const q = Object.fromEntries(new URLSearchParams(query));
  if (parts.length === 0) return { route: ROUTES[0], params: {}, q, name: 'devices' };
  for (const route of ROUTES) {
    const pat = route[0].split('/');
    if (pat.length !== parts.length) continue;
    const params = {};
    const ok = pat.every((p, i) => {
      if (p.startsWith(':')) {
        params[p.slice(1)] = parts[i];
        return true;
      }
      return p === parts[i];
    });
    if (ok) return { route, params, q, name: route[0] };
  }
  return null;
}

function setNav(section) {
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.nav === section);
  }
}

async function render() {
  generation += 1;
  const mine = generation;
  const timers = new Set();
  const ctx = {
    alive: () => mine === generation,
    // Calls fn every `ms` until navigation or until fn returns false.
    every(ms, fn) {
      const tick = async () => {
        if (!ctx.alive()) return;
        let again = true;
        try {
          again = (await fn()) !== false;
        } catch (e) {
          console.warn('refresh failed:', e.message);
        }
        if (again && ctx.alive()) timers.add(setTimeout(tick, ms));
      };
      timers.add(setTimeout(tick, ms));
    },
    ready() {
      if (ctx.alive()) main.dataset.state = 'ready';
    },
  };
  ctxCleanup = () => timers.forEach(clearTimeout);

  disposeIn(main);
  main.dataset.state = 'loading';
  const found = parseHash();
  if (!found) {
    setNav('');
    document.body.dataset.route = 'unknown';
    clear(main, h('h1', {}, 'Not found'), empty('No page here. ', h('a', { href: '#/devices' }, 'Go to devices')));
    ctx.ready();
    return;
  }
  const [, section, page] = found.route;
  setNav(section);
  document.body.dataset.route = found.name;
  if (!token()) {
    clear(main,
      h('h1', {}, 'Welcome to gpulut'),
      empty(
        h('p', {}, 'Paste a bearer token in the field above: the admin token the server was started with (GPULUT_ADMIN_TOKEN), or an API key from ',
          h('code', {}, 'gpulut-server admin create-token'), '.'),
        h('p', { class: 'small' }, 'The token stays in this browser tab only (session storage) and is sent with every API request.')));
    ctx.ready();
    return;
  }
  clear(main, loading('page'));
  try {
    await page(main, found.params, found.q, ctx);
  } catch (e) {
    if (!ctx.alive()) return;
    clear(main, errorBox(e));
    main.dataset.state = 'error';
    return;
  }
  ctx.ready();
}

let ctxCleanup = () => {};

window.addEventListener('hashchange', () => {
  ctxCleanup();
  render();
});

const form = document.getElementById('token-form');
const input = document.getElementById('token');
input.value = token();
form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken(input.value.trim());
  ctxCleanup();
  render();
});
document.getElementById('token-clear').addEventListener('click', () => {
  input.value = '';
  setToken('');
  ctxCleanup();
  render();
});

render();
