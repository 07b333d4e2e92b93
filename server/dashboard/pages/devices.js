// Devices: status and fingerprint; for admins, enrollment tokens and the commands that use them.

import { api, enc, isAdmin } from '/ui/api.js';
import { baseGrid, chart } from '/ui/charts.js';
import { badge, clear, empty, errorBox, figure, h, num, table, when } from '/ui/dom.js';

function gpuName(fp) {
  return (fp && fp.gpu && fp.gpu.name) || '–';
}

function os(fp) {
  if (!fp || !fp.os) return '–';
  return [fp.os, fp.os_version, fp.android_api_level ? `API ${fp.android_api_level}` : null].filter(Boolean).join(' ');
}

function deviceRows(devices) {
  return devices.map((d) => h('tr', { 'data-device': d.id },
    h('td', {}, h('a', { href: `#/devices/${enc(d.id)}` }, d.name)),
    h('td', {}, badge(d.status)),
    h('td', {}, gpuName(d.fingerprint)),
    h('td', {}, (d.fingerprint && d.fingerprint.gpu && d.fingerprint.gpu.driver) || '–'),
    h('td', {}, os(d.fingerprint)),
    h('td', { class: 'num' }, d.agents),
    h('td', {}, when(d.last_seen_at)),
    h('td', {}, (d.labels || []).join(', ') || '–')));
}

export async function list(main, _params, _q, ctx) {
  const [devices, admin] = await Promise.all([api('/v1/devices'), isAdmin()]);
  const listBox = h('section', { id: 'device-list' });
  const render = (ds) => clear(listBox, ds.length === 0
    ? empty(h('p', {}, 'No devices yet.'), h('p', { class: 'small' }, admin
      ? 'Create an enrollment token below and run the agent on a phone or a desktop GPU.'
      : 'An admin enrolls devices with an enrollment token.'))
    : table(['Name', 'Status', 'GPU', 'Driver', 'OS', 'Agents', 'Last seen', 'Labels'], deviceRows(ds), { id: 'devices-table' }));
  render(devices);
  clear(main,
    h('h1', {}, 'Devices'),
    h('p', { class: 'muted' }, 'Phones and GPUs whose agents measure latency tables. A device is online when its agent was heard from within three heartbeats.'),
    listBox,
    admin ? enrollPanel() : null);
  // Status changes as agents come and go.
  ctx.every(5000, async () => render(await api('/v1/devices')));
}

function enrollPanel() {
  const out = h('div', { id: 'enroll-result' });
  const tokensBox = h('div', { id: 'enroll-tokens' });
  const label = h('input', { name: 'label', value: 'dashboard', required: true, maxlength: 100 });
  const uses = h('input', { name: 'max_uses', type: 'number', min: 1, value: 1 });
  const ttl = h('input', { name: 'ttl_h', type: 'number', min: 1, value: 24 });
  const button = h('button', { type: 'submit', id: 'create-enrollment-token' }, 'Create enrollment token');
  const refreshTokens = async () => {
    try {
      const ts = await api('/v1/enrollment-tokens');
      const live = ts.filter((t) => !t.revoked_at && new Date(t.expires_at) > new Date());
      clear(tokensBox, live.length === 0 ? null : [h('h2', {}, 'Live enrollment tokens'),
        table(['Label', 'Prefix', 'Uses', 'Expires'], live.map((t) => h('tr', {},
          h('td', {}, t.label), h('td', { class: 'mono' }, `${t.prefix}…`),
          h('td', { class: 'num' }, `${t.uses} / ${t.max_uses}`), h('td', {}, when(t.expires_at)))))]);
    } catch (e) {
      clear(tokensBox, errorBox(e));
    }
  };
  const form = h('form', {
    class: 'stack',
    id: 'enroll-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      try {
        const t = await api('/v1/enrollment-tokens', {
          method: 'POST',
          body: { label: label.value.trim(), max_uses: Number(uses.value), ttl_s: Number(ttl.value) * 3600 },
        });
        const origin = window.location.origin;
        clear(out,
          h('p', {}, 'Token created; it is shown only now. On the device (for a phone: ', h('code', {}, 'adb shell'), ', in the directory holding the agent):'),
          h('pre', { id: 'enroll-commands' },
            `gpulut-agent enroll --server ${origin} --token ${t.token}\ngpulut-agent run`),
          h('p', { class: 'small muted' }, `It allows ${t.max_uses} enrollment(s) until ${when(t.expires_at)}. A phone reaches this server through `,
            h('code', {}, 'adb reverse'), ' when it is on the same machine.'));
        await refreshTokens();
      } catch (e) {
        clear(out, errorBox(e));
      } finally {
        button.disabled = false;
      }
    },
  },
  h('label', {}, 'Label', label),
  h('label', {}, 'Enrollments allowed', uses),
  h('label', {}, 'Valid for (hours)', ttl),
  h('div', {}, button));
  refreshTokens();
  return h('section', { class: 'panel', id: 'enroll' },
    h('h2', {}, 'Enroll a device'),
    h('p', { class: 'muted small' }, 'Creates a token for the agent: it enrolls once, then pulls profiling jobs.'),
    form, out, tokensBox);
}

function flatten(obj, prefix = '') {
  const out = [];
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flatten(v, key));
    else out.push([key, Array.isArray(v) ? v.join(', ') : v === null ? '–' : String(v)]);
  }
  return out;
}

export async function detail(main, { id }) {
  const [d, tables] = await Promise.all([api(`/v1/devices/${enc(id)}`), api('/v1/tables')]);
  const mine = tables.filter((t) => t.device === d.id);
  const fp = flatten(d.fingerprint);
  clear(main,
    h('p', { class: 'small' }, h('a', { href: '#/devices' }, '← Devices')),
    h('h1', {}, d.name, ' ', badge(d.status)),
    h('div', { class: 'grid2' },
      h('section', { class: 'panel' }, h('h2', {}, 'Device'),
        h('dl', { class: 'kv' },
          h('dt', {}, 'id'), h('dd', { class: 'mono' }, d.id),
          h('dt', {}, 'status'), h('dd', {}, d.status),
          h('dt', {}, 'agents'), h('dd', {}, d.agents),
          h('dt', {}, 'last seen'), h('dd', {}, when(d.last_seen_at)),
          h('dt', {}, 'created'), h('dd', {}, when(d.created_at)),
          h('dt', {}, 'labels'), h('dd', {}, (d.labels || []).join(', ') || '–'))),
      h('section', { class: 'panel', id: 'fingerprint' }, h('h2', {}, 'Fingerprint'),
        fp.length === 0 ? h('p', { class: 'muted' }, 'Registered by hand: no fingerprint.')
          : h('dl', { class: 'kv' }, fp.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])))),
    h('h2', {}, 'Frameworks'),
    (d.frameworks || []).length === 0 ? empty('No agent runs on this device: nothing to measure with.')
      : table(['Framework', 'Version', 'Available', 'Detail'], d.frameworks.map((f) => h('tr', {},
        h('td', {}, f.name), h('td', { class: 'mono' }, f.version || '–'),
        h('td', {}, f.available ? (f.assumed ? 'yes (assumed: older agent)' : 'yes') : 'no'),
        h('td', { class: 'small' }, f.detail || ''))), { id: 'frameworks-table' }),
    scatterPanel(d, mine),
    h('h2', {}, 'Latency tables'),
    mine.length === 0 ? empty('No tables for this device yet.')
      : table(['Framework', 'Space', 'Entries', ''], mine.map((t) => h('tr', {},
        h('td', {}, t.framework), h('td', {}, t.space), h('td', { class: 'num' }, `${t.entries} / ${t.blocks}`),
        h('td', {}, h('a', { href: `#/tables/${enc(t.device)}/${enc(t.framework)}?space=${enc(t.space)}` }, 'heatmap')))))
  );
}

// MoGA's Figure 2 for this device: seeded random architectures predicted from two frameworks'
// tables (GET /v1/devices/{id}/framework-scatter), with the server's rank correlations.
function scatterPanel(d, mine) {
  const spaces = [...new Set(mine.map((t) => t.space))].filter((s) => mine.filter((t) => t.space === s).length >= 2);
  if (spaces.length === 0) return null;
  const space = spaces[0];
  const fws = mine.filter((t) => t.space === space).map((t) => t.framework);
  const a = h('select', { id: 'scatter-a' }, fws.map((f) => h('option', { value: f }, f)));
  const b = h('select', { id: 'scatter-b' }, fws.map((f, i) => h('option', { value: f, selected: i === 1 }, f)));
  const n = h('input', { id: 'scatter-n', type: 'number', min: 2, max: 1000, value: 100 });
  const seed = h('input', { id: 'scatter-seed', type: 'number', min: 0, value: 0 });
  const out = h('div', { id: 'scatter-out' });
  const draw = async () => {
    try {
      const s = await api(`/v1/devices/${enc(d.id)}/framework-scatter?space=${enc(space)}&a=${enc(a.value)}&b=${enc(b.value)}&n=${enc(n.value)}&seed=${enc(seed.value)}`);
      const el = h('div', { class: 'chart', id: 'chart-scatter' });
      const fmt = (v) => (v === null || v === undefined ? '–' : v.toFixed(3));
      clear(out,
        h('div', { class: 'figures' },
          figure('Kendall tau-b', fmt(s.predicted.kendall_tau_b), 'scatter-tau'),
          figure('Spearman rho', fmt(s.predicted.spearman_rho), 'scatter-rho'),
          figure('architectures', String(s.points.length), 'scatter-points'),
          figure('measured end to end', s.measured ? `${s.measured.n} (tau ${fmt(s.measured.kendall_tau_b)})` : '–')),
        el);
      const measured = s.points.filter((p) => p.a_measured_ms !== null && p.b_measured_ms !== null);
      chart(el).setOption({
        animation: false,
        title: { text: `${s.a} vs ${s.b}: end-to-end latency of ${s.n} random architectures (seed ${s.seed})`, left: 'center', textStyle: { fontSize: 14 } },
        tooltip: { formatter: (p) => `${p.data.name}<br>${s.a} ${num(p.value[0], 3)} ms, ${s.b} ${num(p.value[1], 3)} ms` },
        legend: { bottom: 0 },
        grid: baseGrid({ top: 50 }),
        xAxis: { type: 'value', scale: true, name: `${s.a} ms`, nameLocation: 'middle', nameGap: 30 },
        yAxis: { type: 'value', scale: true, name: `${s.b} ms` },
        series: [
          { id: 'predicted', name: 'predicted (table sums)', type: 'scatter', symbolSize: 6, data: s.points.map((p) => ({ name: p.arch, value: [p.a_ms, p.b_ms] })) },
          { id: 'measured', name: 'measured end to end', type: 'scatter', symbol: 'diamond', symbolSize: 8, data: measured.map((p) => ({ name: p.arch, value: [p.a_measured_ms, p.b_measured_ms] })) },
        ],
      });
    } catch (e) {
      clear(out, errorBox(e));
    }
  };
  const form = h('form', {
    class: 'actions',
    id: 'scatter-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      draw();
    },
  }, h('label', {}, 'x ', a), h('label', {}, 'y ', b), h('label', {}, 'n ', n), h('label', {}, 'seed ', seed),
  h('button', { type: 'submit' }, 'Plot'));
  setTimeout(draw, 0); // once the panel is in the page, so the chart has a size
  return h('section', { class: 'panel', id: 'framework-scatter' },
    h('h2', {}, `Frameworks compared (${space})`),
    h('p', { class: 'muted' }, 'The same random networks predicted from two frameworks\' tables on this device (MoGA, Figure 2): points off a line, and a Kendall tau below 1, mean the frameworks disagree on which networks are fast.'),
    form, out);
}
