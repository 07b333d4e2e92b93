// Latency tables: the list, one table's layer x choice heatmap, and the comparison of two tables
// (ratio heatmap and rank correlation of their common blocks: MoGA's point that devices and
// frameworks disagree on what is fast).

import { api, enc } from '/ui/api.js';
import { baseGrid, chart, heatColors, ratioColors } from '/ui/charts.js';
import { clear, empty, figure, h, num, pct, table, when } from '/ui/dom.js';

const STATISTICS = ['median', 'min', 'p10', 'mean'];

export function tableName(t) {
  return `${t.device_name} · ${t.framework}`;
}

function tableKey(t) {
  return `${t.device}/${t.framework}/${t.space}`;
}

function heatmapHref(t) {
  return `#/tables/${enc(t.device)}/${enc(t.framework)}?space=${enc(t.space)}`;
}

function choiceLabel(c) {
  return `k${c.kernel} e${c.expansion}${c.se ? ' SE' : ''}`;
}

export async function list(main) {
  const tables = await api('/v1/tables');
  if (tables.length === 0) {
    clear(main, h('h1', {}, 'Latency tables'),
      empty(h('p', {}, 'No latency tables yet.'),
        h('p', { class: 'small' }, 'A table fills in as a device\'s agent measures a campaign (POST /v1/campaigns), or when measurements from another tool are imported.')));
    return;
  }
  const rows = tables.map((t) => h('tr', { 'data-table': tableKey(t) },
    h('td', {}, h('a', { href: `#/devices/${enc(t.device)}` }, t.device_name)),
    h('td', {}, t.framework),
    h('td', {}, t.space),
    h('td', {}, h('span', { class: 'bar', title: pct(t.coverage) }, h('span', { class: `w${Math.round(t.coverage * 20) * 5}` })), ` ${t.entries} / ${t.blocks}`),
    h('td', { class: 'num' }, t.stale),
    h('td', {}, t.validation ? `${pct(t.validation.within_10pct, 0)} within ±10%` : '–'),
    h('td', {}, when(t.last_measured_at)),
    h('td', {}, h('a', { href: heatmapHref(t), class: 'open-heatmap' }, 'heatmap'),
      t.validation ? [' · ', h('a', { href: `#/validation/${enc(t.device)}/${enc(t.framework)}?space=${enc(t.space)}` }, 'validation')] : null)));
  // Bars: widths from classes, since inline styles are not allowed by the page's policy.
  const a = h('select', { id: 'compare-a' }, tables.map((t, i) => h('option', { value: i }, `${tableName(t)} (${t.space})`)));
  const b = h('select', { id: 'compare-b' }, tables.map((t, i) => h('option', { value: i, selected: i === 1 }, `${tableName(t)} (${t.space})`)));
  const note = h('p', { class: 'small muted' });
  const compareForm = h('form', {
    class: 'stack',
    id: 'compare-form',
    onsubmit: (ev) => {
      ev.preventDefault();
      const ta = tables[Number(a.value)];
      const tb = tables[Number(b.value)];
      if (ta.space !== tb.space) {
        note.textContent = 'Pick two tables of the same space.';
        return;
      }
      location.hash = `#/compare/${enc(ta.device)}/${enc(ta.framework)}/${enc(tb.device)}/${enc(tb.framework)}?space=${enc(ta.space)}`;
    },
  }, h('label', {}, 'Table A', a), h('label', {}, 'Table B', b), h('div', {}, h('button', { type: 'submit' }, 'Compare')));
  clear(main,
    h('h1', {}, 'Latency tables'),
    h('p', { class: 'muted' }, 'One table per (device, framework): statistics of every block of a space, recomputed from raw samples as results land.'),
    table(['Device', 'Framework', 'Space', 'Entries', 'Stale', 'Validation', 'Last measured', ''], rows, { id: 'tables-table' }),
    h('section', { class: 'panel' }, h('h2', {}, 'Compare two tables'),
      h('p', { class: 'small muted' }, 'Do two phones or two frameworks agree on which blocks are fast? The ratio of every (layer, choice) and the rank correlation of all common blocks.'),
      compareForm, note));
}

function statisticPicker(current, onChange) {
  return h('label', { class: 'small' }, 'Statistic ',
    h('select', { id: 'statistic', onchange: (ev) => onChange(ev.target.value) },
      STATISTICS.map((s) => h('option', { value: s, selected: s === current }, s))));
}

function findTable(tables, device, framework, space) {
  return tables.find((t) => t.device === device && t.framework === framework && t.space === space)
    || tables.find((t) => (t.device === device || t.device_name === device) && t.framework === framework);
}

export async function heatmap(main, { device, framework }, q) {
  const space = q.space || 'moga-mbv3';
  const statistic = STATISTICS.includes(q.statistic) ? q.statistic : 'median';
  const [tables, m] = await Promise.all([
    api('/v1/tables'),
    api(`/v1/tables/${enc(device)}/${enc(framework)}/matrix?space=${enc(space)}&statistic=${statistic}`),
  ]);
  const t = findTable(tables, device, framework, space);
  const title = t ? tableName(t) : `${device} · ${framework}`;
  const data = [];
  m.ms.forEach((row, layer) => row.forEach((v, c) => {
    if (v !== null && v !== undefined) data.push([c, layer, v]);
  }));
  const cells = m.ms.length * m.choices.length;
  const el = h('div', { class: 'chart', id: 'chart-heatmap' });
  const exportLinks = ['json', 'csv', 'ofa-yaml'].map((f) => h('button', {
    type: 'button',
    class: 'secondary',
    onclick: () => download(`/v1/tables/${enc(device)}/${enc(framework)}?space=${enc(space)}&format=${f}`,
      `${title.replace(/[^A-Za-z0-9._-]+/g, '_')}.${f === 'ofa-yaml' ? 'yaml' : f}`),
  }, f.toUpperCase()));
  const body = data.length === 0
    ? empty('This table has no entries for the blocks of this space yet.')
    : el;
  clear(main,
    h('p', { class: 'small' }, h('a', { href: '#/tables' }, '← Tables')),
    h('h1', {}, title, h('span', { class: 'muted' }, ` · ${m.space}`)),
    h('div', { class: 'actions' },
      statisticPicker(statistic, (s) => { location.hash = `#/tables/${enc(device)}/${enc(framework)}?space=${enc(space)}&statistic=${s}`; }),
      h('span', { class: 'muted small' }, 'Download:'), exportLinks),
    h('div', { class: 'figures' },
      figure('cells with data', `${data.length} / ${cells}`, 'heatmap-cells'),
      figure(`fastest choice (${statistic} ms)`, data.length ? num(Math.min(...data.map((d) => d[2]))) : '–'),
      figure(`slowest choice (${statistic} ms)`, data.length ? num(Math.max(...data.map((d) => d[2]))) : '–')),
    h('section', { class: 'panel' }, body),
    h('h2', {}, 'Fixed parts'),
    h('p', { class: 'small muted' }, 'Stem and head: in every network of the space, in this order.'),
    table(['Block', `${statistic} ms`], m.fixed.map((b) => h('tr', {},
      h('td', { class: 'mono' }, b.key), h('td', { class: 'num' }, num(b.ms, 4))))));
  if (data.length === 0) return;
  const values = data.map((d) => d[2]);
  chart(el).setOption({
    animation: false,
    title: { text: `${statistic} latency per layer and choice (ms)`, left: 'center', textStyle: { fontSize: 14 } },
    tooltip: {
      formatter: (p) => `layer ${p.value[1] + 1}, ${choiceLabel(m.choices[p.value[0]])}<br>${num(p.value[2], 4)} ms`,
    },
    grid: baseGrid({ top: 50, bottom: 120 }),
    xAxis: { type: 'category', data: m.choices.map(choiceLabel), name: 'choice (kernel, expansion, squeeze-excite)', nameLocation: 'middle', nameGap: 32, axisLabel: { interval: 0 }, splitArea: { show: true } },
    yAxis: { type: 'category', data: m.ms.map((_, i) => `L${i + 1}`), inverse: true, name: 'layer', nameLocation: 'start', splitArea: { show: true } },
    visualMap: {
      min: Math.min(...values), max: Math.max(...values), calculable: true, orient: 'horizontal', precision: 2,
      left: 'center', bottom: 0, itemHeight: 260, inRange: { color: heatColors }, text: ['slow', 'fast'],
    },
    series: [{
      id: 'cells', name: 'latency', type: 'heatmap', data,
      label: { show: true, fontSize: 10, formatter: (p) => num(p.value[2], 2) },
    }],
  });
}

async function download(path, filename) {
  const text = await api(path, { text: true });
  const url = URL.createObjectURL(new Blob([text], { type: 'application/octet-stream' }));
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function compare(main, { deviceA, frameworkA, deviceB, frameworkB }, q) {
  const space = q.space || 'moga-mbv3';
  // The server compares (GET /v1/tables/compare): the blocks both tables have, their rank
  // correlations and the layer x choice ratio matrix, computed once in the tables crate.
  let cmp = null;
  let refusal = null;
  try {
    cmp = await api(`/v1/tables/compare?space=${enc(space)}&a=${enc(`${deviceA}/${frameworkA}`)}&b=${enc(`${deviceB}/${frameworkB}`)}&statistic=median`);
  } catch (e) {
    if (e.status !== 422) throw e;
    refusal = e.message;
  }
  const nameA = cmp ? tableName({ device_name: cmp.a.device_name, framework: frameworkA }) : `${deviceA} · ${frameworkA}`;
  const nameB = cmp ? tableName({ device_name: cmp.b.device_name, framework: frameworkB }) : `${deviceB} · ${frameworkB}`;
  const choices = cmp ? cmp.choices : [];
  const layers = cmp ? cmp.ratio.length : 0;

  // Ratio of every (layer, choice) both tables have.
  const ratio = [];
  if (cmp) {
    cmp.ratio.forEach((row, layer) => row.forEach((r, c) => {
      if (r !== null && r > 0 && Number.isFinite(r)) ratio.push([c, layer, Math.log2(r), r]);
    }));
  }
  // Every block both tables measured (stem and head included).
  const common = cmp ? cmp.blocks : [];
  const xs = common.map((b) => b.a_ms);
  const ys = common.map((b) => b.b_ms);
  const rho = cmp && cmp.spearman_rho !== null ? cmp.spearman_rho : NaN;
  const tau = cmp && cmp.kendall_tau_b !== null ? cmp.kendall_tau_b : NaN;

  const ratioEl = h('div', { class: 'chart', id: 'chart-ratio' });
  const pairsEl = h('div', { class: 'chart short', id: 'chart-pairs' });
  const fig = (label, v, id) => {
    const f = figure(label, Number.isFinite(v) ? v.toFixed(3) : '–', id);
    f.querySelector('.v').dataset.value = String(v);
    return f;
  };
  clear(main,
    h('p', { class: 'small' }, h('a', { href: '#/tables' }, '← Tables')),
    h('h1', {}, 'Compare ', h('span', { id: 'name-a' }, nameA), ' with ', h('span', { id: 'name-b' }, nameB)),
    h('p', { class: 'muted' }, `Median latency of ${space}'s blocks. A rank correlation below 1 means the two disagree on which blocks are fast, so a network that is fast on one is not necessarily fast on the other.`),
    h('div', { class: 'figures' },
      fig('Spearman rho', rho, 'rho'),
      fig('Kendall tau-b', tau, 'tau'),
      figure('common blocks', String(common.length), 'common-blocks'),
      figure('cells compared', String(ratio.length), 'ratio-cells')),
    refusal ? empty(refusal) : null,
    h('div', { class: 'grid2' },
      h('section', { class: 'panel' }, ratio.length ? ratioEl : empty('No (layer, choice) cell is in both tables.')),
      h('section', { class: 'panel' }, common.length ? pairsEl : empty('No common blocks.'))));
  if (ratio.length) {
    const span = Math.max(0.1, ...ratio.map((r) => Math.abs(r[2])));
    chart(ratioEl).setOption({
      animation: false,
      title: { text: 'latency ratio A / B per layer and choice', left: 'center', textStyle: { fontSize: 14 } },
      tooltip: { formatter: (p) => `layer ${p.value[1] + 1}, ${choiceLabel(choices[p.value[0]])}<br>A/B = ${num(p.value[3], 3)}` },
      grid: baseGrid({ left: 50, right: 10, top: 50, bottom: 125 }),
      xAxis: { type: 'category', data: choices.map(choiceLabel), axisLabel: { interval: 0, rotate: 40 }, splitArea: { show: true } },
      yAxis: { type: 'category', data: Array.from({ length: layers }, (_, i) => `L${i + 1}`), inverse: true, splitArea: { show: true } },
      visualMap: {
        min: -span, max: span, dimension: 2, calculable: true, orient: 'horizontal', left: 'center', bottom: 0,
        inRange: { color: ratioColors }, formatter: (v) => `${num(2 ** v, 2)}x`, text: ['A slower', 'A faster'],
      },
      series: [{ id: 'ratio', name: 'A / B', type: 'heatmap', data: ratio, label: { show: true, fontSize: 9, formatter: (p) => num(p.value[3], 2) } }],
    });
  }
  if (common.length) {
    chart(pairsEl).setOption({
      animation: false,
      title: { text: 'every common block: A vs B (ms, log scale)', left: 'center', textStyle: { fontSize: 14 } },
      tooltip: { formatter: (p) => `${p.data.name}<br>A ${num(p.value[0], 4)} ms, B ${num(p.value[1], 4)} ms` },
      grid: baseGrid({ top: 60 }),
      xAxis: { type: 'log', name: 'A ms', nameLocation: 'middle', nameGap: 30 },
      yAxis: { type: 'log', name: 'B ms' },
      series: [{ id: 'pairs', type: 'scatter', symbolSize: 6, data: common.map((e, i) => ({ name: e.key, value: [xs[i], ys[i]] })) }],
    });
  }
}
