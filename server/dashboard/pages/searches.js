// Searches: a form that launches one, the list with live status, and a search's page with the
// Pareto front, the hypervolume per generation, and downloads of the front.

import { api, enc } from '/ui/api.js';
import { baseGrid, chart, palette } from '/ui/charts.js';
import { badge, clear, compact, empty, errorBox, figure, h, num, table, when } from '/ui/dom.js';
import { tableName } from '/ui/pages/tables.js';

const ACTIVE = ['queued', 'running'];

function progress(s) {
  const share = s.generations ? s.generation / s.generations : 0;
  return [h('span', { class: 'bar' }, h('span', { class: `w${Math.round(share * 20) * 5}` })),
    ` ${s.generation} / ${s.generations}`];
}

function seconds(s) {
  if (s === null || s === undefined) return '–';
  if (s < 90) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function searchRows(list) {
  return list.map((s) => h('tr', { 'data-search': s.id, 'data-state': s.state },
    h('td', {}, h('a', { href: `#/searches/${enc(s.id)}`, class: 'mono' }, s.id.slice(0, 8))),
    h('td', {}, badge(s.state)),
    h('td', {}, s.space),
    h('td', {}, progress(s)),
    h('td', { class: 'num' }, s.evaluations.toLocaleString('en-US')),
    h('td', {}, s.accuracy_kind),
    h('td', {}, when(s.created_at)),
    h('td', { class: 'num' }, seconds(s.elapsed_s))));
}

export async function list(main, _params, _q, ctx) {
  const [spaces, tables, searches] = await Promise.all([api('/v1/spaces'), api('/v1/tables'), api('/v1/searches?limit=50')]);
  const listBox = h('section', { id: 'search-list' });
  const renderList = (ss) => clear(listBox, ss.length === 0
    ? empty(h('p', {}, 'No searches yet.'), h('p', { class: 'small' }, 'Launch one with the form above.'))
    : table(['Search', 'State', 'Space', 'Generation', 'Evaluations', 'Accuracy', 'Created', 'Elapsed'], searchRows(ss), { id: 'searches-table' }));
  renderList(searches);
  let active = searches.some((x) => ACTIVE.includes(x.state));
  const refresh = async () => {
    const latest = await api('/v1/searches?limit=50');
    active = latest.some((x) => ACTIVE.includes(x.state));
    renderList(latest);
  };
  const notice = h('div', { id: 'search-notice' });
  clear(main,
    h('h1', {}, 'Searches'),
    h('p', { class: 'muted' }, 'Weighted NSGA-II (MoGA) over a space: accuracy up, latency from the tables down, parameters up; a worker runs it and checkpoints every generation.'),
    h('section', { class: 'panel' }, h('h2', {}, 'Launch a search'), searchForm(spaces, tables, notice, refresh)),
    notice,
    h('h2', {}, 'Recent searches'),
    listBox);
  // Live status: every 1.5 s while a search is queued or running, every 15 s otherwise (and at
  // once after a launch from the form).
  let idle = 0;
  ctx.every(1500, async () => {
    idle = active ? 0 : idle + 1;
    if (idle % 10 === 0) await refresh();
  });
}

function searchForm(spaces, tables, notice, refresh) {
  const numInput = (name, value, attrs = {}) => h('input', { name, type: 'number', value, ...attrs });
  const space = h('select', { name: 'space' }, spaces.map((s) => h('option', { value: s.name }, s.name)));
  const tablesBox = h('fieldset', { class: 'wide', id: 'search-tables' }, h('legend', {}, 'Latency tables (one device, or a fleet)'));
  const fillTables = () => {
    const mine = tables.filter((t) => t.space === space.value);
    clear(tablesBox, h('legend', {}, 'Latency tables (one device, or a fleet)'),
      mine.length === 0 ? h('p', { class: 'small muted' }, 'No table of this space yet.') : mine.map((t, i) => h('label', {},
        h('input', { type: 'checkbox', name: 'table', value: `${t.device}|${t.framework}`, checked: i === 0 && t.entries === t.blocks, disabled: t.entries < t.blocks }),
        `${tableName(t)}`, t.entries < t.blocks ? h('span', { class: 'muted small' }, ` (${t.entries} of ${t.blocks} blocks: incomplete)`) : null)));
  };
  space.addEventListener('change', fillTables);
  if (spaces.some((s) => s.name === 'moga-mbv3')) space.value = 'moga-mbv3';
  fillTables();
  const combine = h('select', { name: 'combine' }, h('option', { value: 'max' }, 'worst device (max)'), h('option', { value: 'mean' }, 'mean'));
  const accuracy = h('select', { name: 'accuracy' },
    h('option', { value: 'proxy' }, 'proxy (built-in prior, for demos)'),
    h('option', { value: 'samples' }, 'surrogate of uploaded samples'),
    h('option', { value: 'http' }, 'my evaluator (HTTP)'));
  const sampleSet = h('input', { name: 'sample_set', placeholder: 'sample set id' });
  const url = h('input', { name: 'url', placeholder: 'https://…' });
  const extraBox = h('label', { class: 'extra' });
  const fillExtra = () => {
    if (accuracy.value === 'samples') clear(extraBox, 'Sample set', sampleSet);
    else if (accuracy.value === 'http') clear(extraBox, 'Evaluator URL', url);
    else clear(extraBox);
  };
  accuracy.addEventListener('change', fillExtra);
  fillExtra();
  const population = numInput('population', 32, { min: 4, max: 5000 });
  const generations = numInput('generations', 20, { min: 1, max: 5000 });
  const seed = numInput('seed', 1, { min: 0 });
  const wa = numInput('w_accuracy', 2, { min: 0, step: 'any' });
  const wl = numInput('w_latency', 2, { min: 0, step: 'any' });
  const wp = numInput('w_params', 1, { min: 0, step: 'any' });
  const maxLatency = numInput('max_latency_ms', '', { min: 0, step: 'any', placeholder: 'none' });
  const submit = h('button', { type: 'submit', id: 'launch-search' }, 'Launch');
  return h('form', {
    class: 'stack',
    id: 'search-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const chosen = [...tablesBox.querySelectorAll('input[name=table]:checked')].map((i) => {
        const cut = i.value.indexOf('|');
        const [device, framework] = [i.value.slice(0, cut), i.value.slice(cut + 1)];
        return { device, framework };
      });
      const acc = { kind: accuracy.value };
      if (acc.kind === 'samples') acc.sample_set = sampleSet.value.trim();
      if (acc.kind === 'http') acc.url = url.value.trim();
      const body = {
        space: space.value,
        tables: chosen,
        accuracy: acc,
        population: Number(population.value),
        generations: Number(generations.value),
        seed: Number(seed.value),
        weights: { accuracy: Number(wa.value), latency: Number(wl.value), params: Number(wp.value) },
      };
      if (chosen.length > 1) body.latency = { combine: combine.value };
      if (maxLatency.value !== '') body.constraints = { max_latency_ms: Number(maxLatency.value) };
      submit.disabled = true;
      try {
        const created = await api('/v1/searches', { method: 'POST', body });
        clear(notice, h('div', { class: 'notice info', id: 'search-created', 'data-search': created.id },
          'Search ', h('a', { href: `#/searches/${enc(created.id)}`, class: 'mono' }, created.id), ` is ${created.state}.`));
        await refresh();
      } catch (e) {
        clear(notice, errorBox(e));
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('label', {}, 'Space', space),
  tablesBox,
  h('label', {}, 'Fleet latency', combine),
  h('label', {}, 'Accuracy', accuracy),
  extraBox,
  h('label', {}, 'Population', population),
  h('label', {}, 'Generations', generations),
  h('label', {}, 'Seed', seed),
  h('label', {}, 'Weight: accuracy', wa),
  h('label', {}, 'Weight: latency', wl),
  h('label', {}, 'Weight: params', wp),
  h('label', {}, 'Max latency (ms)', maxLatency),
  h('div', {}, submit));
}

function csvCell(v) {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function frontCsv(f) {
  const lines = ['kind,name,arch,accuracy,latency_ms,params,macs'];
  for (const m of f.front) lines.push(['front', '', m.arch, m.accuracy, m.latency_ms, m.params, m.macs].map(csvCell).join(','));
  for (const r of f.references) lines.push(['reference', r.name, r.arch, r.accuracy, r.latency_ms, r.params, r.macs].map(csvCell).join(','));
  return `${lines.join('\n')}\n`;
}

function save(text, type, filename) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function detail(main, { id }, _q, ctx) {
  const [s0, f0] = await Promise.all([api(`/v1/searches/${enc(id)}`), api(`/v1/searches/${enc(id)}/front?breakdown=false`)]);
  let front = f0;
  const head = h('div', { id: 'search-head' });
  const frontEl = h('div', { class: 'chart', id: 'chart-front' });
  const hvEl = h('div', { class: 'chart short', id: 'chart-hv' });
  const frontBox = h('section', { class: 'panel' });
  const hvBox = h('section', { class: 'panel' });
  const members = h('section', { id: 'front-members' });
  const downloads = h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'secondary', id: 'download-json', onclick: async () => save(JSON.stringify(await api(`/v1/searches/${enc(id)}/front`), null, 2), 'application/json', `front-${id}.json`) }, 'Download front (JSON)'),
    h('button', { type: 'button', class: 'secondary', id: 'download-csv', onclick: () => save(frontCsv(front), 'text/csv', `front-${id}.csv`) }, 'Download front (CSV)'));
  clear(main,
    h('p', { class: 'small' }, h('a', { href: '#/searches' }, '← Searches')),
    head,
    frontBox,
    downloads,
    hvBox,
    members);

  const render = (s, f) => {
    front = f;
    const req = s.request || {};
    const cancel = ACTIVE.includes(s.state) && !s.cancel_requested
      ? h('button', {
        type: 'button',
        class: 'secondary',
        onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api(`/v1/searches/${enc(id)}/cancel`, { method: 'POST' });
          } catch (e) {
            head.append(errorBox(e));
          }
        },
      }, 'Cancel')
      : null;
    clear(head,
      h('h1', {}, 'Search ', h('span', { class: 'mono' }, s.id.slice(0, 8)), ' ', h('span', { id: 'search-state', 'data-state': s.state }, badge(s.state)), ' ', cancel),
      s.failure_reason ? h('div', { class: 'notice error' }, s.failure_reason) : null,
      s.accuracy_kind === 'proxy' ? h('p', { class: 'small muted' }, 'Accuracy from the built-in proxy: a prior for demos, not measured accuracy.') : null,
      h('div', { class: 'figures' },
        figure('generation', [progress(s)]),
        figure('front size', String(f.front.length), 'front-size'),
        figure('evaluations', s.evaluations.toLocaleString('en-US')),
        figure('elapsed', seconds(s.elapsed_s)),
        figure(ACTIVE.includes(s.state) ? 'to finish (estimate)' : 'finished', ACTIVE.includes(s.state) ? seconds(s.estimate_s) : when(s.finished_at)),
        figure('population × generations', `${s.population} × ${s.generations}`),
        figure('weights acc : lat : params', req.weights ? `${req.weights.accuracy} : ${req.weights.latency} : ${req.weights.params}` : '2 : 2 : 1')));

    const points = f.front.map((m) => ({ name: m.arch, value: [m.latency_ms, m.accuracy, m.params, m.macs] }));
    const refs = f.references.filter((r) => typeof r.accuracy === 'number' && typeof r.latency_ms === 'number')
      .map((r) => ({ name: r.name, value: [r.latency_ms, r.accuracy, r.params, r.macs] }));
    if (points.length === 0) {
      clear(frontBox, empty(ACTIVE.includes(s.state) ? 'The first generation is being evaluated…' : 'This search has no front.'));
    } else {
      if (!frontBox.contains(frontEl)) clear(frontBox, frontEl);
      const params = [...points, ...refs].map((p) => p.value[2]);
      chart(frontEl).setOption({
        animation: false,
        title: { text: 'Pareto front: accuracy vs latency (colour and size: params)', left: 'center', textStyle: { fontSize: 14 } },
        legend: { bottom: 0, data: ['front', 'reference networks'] },
        tooltip: { formatter: (p) => `${p.data.name}<br>accuracy ${num(p.value[1], 3)}<br>latency ${num(p.value[0], 3)} ms<br>params ${compact(p.value[2])}, MACs ${compact(p.value[3])}` },
        grid: baseGrid({ top: 60, right: 120, bottom: 70 }),
        xAxis: { type: 'value', name: 'latency (ms)', nameLocation: 'middle', nameGap: 30, scale: true },
        yAxis: { type: 'value', name: f.accuracy_kind === 'proxy' ? 'accuracy (proxy)' : 'accuracy (top-1 %)', scale: true },
        visualMap: {
          type: 'continuous', seriesIndex: 0, dimension: 2, min: Math.min(...params), max: Math.max(...params),
          right: 5, top: 'middle', text: ['params', ''], calculable: true, precision: 0,
          inRange: { color: ['#9ecae1', '#4292c6', '#08306b'], symbolSize: [7, 18] },
          formatter: (v) => compact(Math.round(v)),
        },
        series: [
          { id: 'front', name: 'front', type: 'scatter', data: points },
          {
            id: 'references', name: 'reference networks', type: 'scatter', data: refs, symbol: 'diamond', symbolSize: 14,
            itemStyle: { color: palette[1], borderColor: '#fff', borderWidth: 1 },
            label: { show: true, position: 'right', formatter: (p) => p.data.name, fontWeight: 'bold', color: palette[1] },
          },
        ],
      }, { replaceMerge: ['series'] });
    }
    const hv = s.hypervolume.map((p) => [p.generation, p.hypervolume]);
    if (hv.length === 0) {
      clear(hvBox, empty('Hypervolume appears after the first generation.'));
    } else {
      if (!hvBox.contains(hvEl)) clear(hvBox, hvEl);
      chart(hvEl).setOption({
        animation: false,
        title: { text: 'hypervolume per generation', left: 'center', textStyle: { fontSize: 14 } },
        tooltip: { trigger: 'axis' },
        grid: baseGrid({ top: 60 }),
        xAxis: { type: 'value', name: 'generation', nameLocation: 'middle', nameGap: 30, minInterval: 1 },
        yAxis: { type: 'value', name: 'hypervolume', scale: true },
        series: [{ id: 'hypervolume', type: 'line', data: hv, showSymbol: hv.length < 60, itemStyle: { color: palette[2] } }],
      });
    }
    clear(members, h('h2', {}, 'Front members'),
      f.front.length === 0 ? empty('No members yet.') : table(['Architecture', 'Accuracy', 'Latency ms', 'Params', 'MACs'],
        f.front.map((m) => h('tr', {}, h('td', { class: 'mono' }, m.arch), h('td', { class: 'num' }, num(m.accuracy, 3)),
          h('td', { class: 'num' }, num(m.latency_ms, 3)), h('td', { class: 'num' }, compact(m.params)), h('td', { class: 'num' }, compact(m.macs)))),
        { id: 'front-table' }),
      f.references.length === 0 ? null : [h('h2', {}, 'Reference networks'),
        table(['Network', 'Accuracy', 'Latency ms', 'Params', 'MACs'], f.references.map((r) => h('tr', {},
          h('td', {}, r.name), h('td', { class: 'num' }, num(r.accuracy, 3)), h('td', { class: 'num' }, num(r.latency_ms, 3)),
          h('td', { class: 'num' }, compact(r.params)), h('td', { class: 'num' }, compact(r.macs))))),
        refs.length < f.references.length ? h('p', { class: 'small muted' }, 'Networks without accuracy or latency on these tables (outside the grid, or blocks missing) are listed but not plotted.') : null]);
  };
  render(s0, f0);
  if (ACTIVE.includes(s0.state)) {
    ctx.every(1500, async () => {
      const [s, f] = await Promise.all([api(`/v1/searches/${enc(id)}`), api(`/v1/searches/${enc(id)}/front?breakdown=false`)]);
      if (!ctx.alive()) return false;
      render(s, f);
      return ACTIVE.includes(s.state);
    });
  }
}
