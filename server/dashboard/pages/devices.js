// Devices: status and fingerprint; for admins, enrollment tokens and the commands that use them.

import { api, enc, isAdmin } from '/ui/api.js';
import { badge, clear, empty, errorBox, h, table, when } from '/ui/dom.js';

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
    h('h2', {}, 'Latency tables'),
    mine.length === 0 ? empty('No tables for this device yet.')
      : table(['Framework', 'Space', 'Entries', ''], mine.map((t) => h('tr', {},
        h('td', {}, t.framework), h('td', {}, t.space), h('td', { class: 'num' }, `${t.entries} / ${t.blocks}`),
        h('td', {}, h('a', { href: `#/tables/${enc(t.device)}/${enc(t.framework)}?space=${enc(t.space)}` }, 'heatmap')))))
  );
}
