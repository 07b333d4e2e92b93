// Validation: how well a table's summed blocks predict whole networks measured end to end,
// before and after the table's calibration.

import { api, enc } from '/ui/api.js';
import { baseGrid, chart, palette } from '/ui/charts.js';
import { clear, empty, figure, h, num, pct, table, when } from '/ui/dom.js';
import { tableName } from '/ui/pages/tables.js';

export async function list(main) {
  const tables = (await api('/v1/tables')).filter((t) => t.validation);
  clear(main,
    h('h1', {}, 'Validation'),
    h('p', { class: 'muted' }, 'A campaign with validation also measures whole networks end to end; each table then reports how well its summed blocks predict them, and fits a calibration.'),
    tables.length === 0
      ? empty(h('p', {}, 'No table has validation measurements yet.'),
        h('p', { class: 'small' }, 'Create a campaign with ', h('code', {}, '"validation": {"references": true, "random": 8}'), '.'))
      : table(['Table', 'Space', 'Networks', 'Within ±5%', 'Within ±10%', 'RMSE ms', ''], tables.map((t) => h('tr', {},
        h('td', {}, tableName(t)), h('td', {}, t.space),
        h('td', { class: 'num' }, t.validation.networks),
        h('td', { class: 'num' }, pct(t.validation.within_5pct, 0)),
        h('td', { class: 'num' }, pct(t.validation.within_10pct, 0)),
        h('td', { class: 'num' }, num(t.validation.rmse_ms, 3)),
        h('td', {}, h('a', { href: `#/validation/${enc(t.device)}/${enc(t.framework)}?space=${enc(t.space)}`, class: 'open-validation' }, 'scatter')))),
      { id: 'validation-tables' }));
}

function accuracyRow(name, a) {
  return h('tr', {}, h('td', {}, name), h('td', { class: 'num' }, a.networks),
    h('td', { class: 'num' }, pct(a.within_5pct)), h('td', { class: 'num' }, pct(a.within_10pct)),
    h('td', { class: 'num' }, num(a.rmse_ms, 3)), h('td', { class: 'num' }, pct(a.mean_bias)));
}

export async function detail(main, { device, framework }, q) {
  const space = q.space || 'moga-mbv3';
  const [tables, v] = await Promise.all([
    api('/v1/tables'),
    api(`/v1/tables/${enc(device)}/${enc(framework)}/validation?space=${enc(space)}`),
  ]);
  const t = tables.find((x) => x.device === v.device && x.framework === v.framework && x.space === v.space);
  const r = v.report;
  const c = v.calibration;
  const nets = r.networks;
  const raw = nets.filter((n) => n.predicted_ms !== null).map((n) => ({ name: n.arch, value: [n.measured_ms, n.predicted_ms] }));
  const cal = nets.filter((n) => n.calibrated_ms !== null).map((n) => ({ name: n.arch, value: [n.measured_ms, n.calibrated_ms] }));
  const el = h('div', { class: 'chart', id: 'chart-validation' });
  clear(main,
    h('p', { class: 'small' }, h('a', { href: '#/validation' }, '← Validation')),
    h('h1', {}, t ? tableName(t) : `${device} · ${framework}`, h('span', { class: 'muted' }, ` · ${v.space}`)),
    h('div', { class: 'figures', id: 'validation-figures' },
      figure('raw within ±10%', pct(r.raw.within_10pct), 'raw-within-10'),
      figure('calibrated within ±10% (out of sample)', pct(r.calibrated.within_10pct), 'cal-within-10'),
      figure('calibrated within ±5%', pct(r.calibrated.within_5pct), 'cal-within-5'),
      figure('networks', String(nets.length), 'validation-networks')),
    h('section', { class: 'panel' }, nets.length ? el : empty('No network was measured end to end yet.')),
    h('div', { class: 'grid2' },
      h('section', { class: 'panel' }, h('h2', {}, 'Accuracy'),
        table(['', 'Networks', 'Within ±5%', 'Within ±10%', 'RMSE ms', 'Mean bias'],
          [accuracyRow(`summed ${r.statistic}`, r.raw), accuracyRow('calibrated (leave-one-out)', r.calibrated)], { id: 'accuracy-table' }),
        r.incomplete.length ? h('p', { class: 'small muted' }, `Not used (the table lacks some of their blocks): ${r.incomplete.join(', ')}.`) : null),
      h('section', { class: 'panel' }, h('h2', {}, 'Calibration'),
        h('p', {}, h('code', {}, `measured = ${num(c.scale, 4)} × sum(${c.statistic}) + ${num(c.overhead_per_boundary_ms, 4)} ms × (blocks − 1)`)),
        h('p', { class: 'small muted' }, `Fitted ${when(v.fitted_at)} by least squares; predict uses it with "calibrated": true.`))),
    h('h2', {}, 'Networks'),
    table(['Network', 'Measured ms', 'Summed ms', 'Error', 'Calibrated ms', 'Error', 'Per boundary ms'], nets.map((n) => h('tr', {},
      h('td', { class: 'mono' }, n.arch),
      h('td', { class: 'num' }, num(n.measured_ms, 3)),
      h('td', { class: 'num' }, num(n.predicted_ms, 3)),
      h('td', { class: 'num' }, n.predicted_ms === null ? '–' : pct((n.predicted_ms - n.measured_ms) / n.measured_ms)),
      h('td', { class: 'num' }, num(n.calibrated_ms, 3)),
      h('td', { class: 'num' }, n.calibrated_ms === null ? '–' : pct((n.calibrated_ms - n.measured_ms) / n.measured_ms)),
      h('td', { class: 'num' }, num(n.overhead_per_boundary_ms, 4))))));
  if (!nets.length) return;
  const all = [...raw, ...cal].flatMap((p) => p.value);
  const lo = Math.min(...all) * 0.85;
  const hi = Math.max(...all) * 1.15;
  const line = (k) => [[lo, lo * k], [hi, hi * k]];
  chart(el).setOption({
    animation: false,
    title: { text: 'predicted vs measured (ms)', left: 'center', textStyle: { fontSize: 14 } },
    legend: { bottom: 0 },
    tooltip: { trigger: 'item', formatter: (p) => (p.seriesType === 'scatter' ? `${p.data.name}<br>measured ${num(p.value[0], 3)} ms<br>predicted ${num(p.value[1], 3)} ms` : p.seriesName) },
    grid: baseGrid({ top: 60, bottom: 70 }),
    xAxis: { type: 'value', name: 'measured end to end (ms)', nameLocation: 'middle', nameGap: 30, min: lo, max: hi, axisLabel: { formatter: (x) => num(x, 1) } },
    yAxis: { type: 'value', name: 'predicted (ms)', min: lo, max: hi, axisLabel: { formatter: (x) => num(x, 1) } },
    series: [
      // The ±10% band: a polygon between y = 0.9x and y = 1.1x.
      {
        id: 'band', name: '±10%', type: 'custom', silent: true, clip: true, data: [[lo, lo]], z: 1,
        itemStyle: { color: 'rgba(84, 130, 53, 0.18)' },
        renderItem: (_params, a) => ({
          type: 'polygon',
          shape: { points: [a.coord([lo, lo * 0.9]), a.coord([hi, hi * 0.9]), a.coord([hi, hi * 1.1]), a.coord([lo, lo * 1.1])] },
          style: { fill: 'rgba(84, 130, 53, 0.18)' },
        }),
      },
      { id: 'identity', name: 'y = x', type: 'line', data: line(1), symbol: 'none', silent: true, lineStyle: { color: '#555', type: 'dashed' } },
      { id: 'raw', name: `summed ${r.statistic}`, type: 'scatter', data: raw, symbolSize: 9, itemStyle: { color: palette[1] } },
      { id: 'calibrated', name: 'calibrated (leave-one-out)', type: 'scatter', data: cal, symbolSize: 9, itemStyle: { color: palette[0] } },
    ],
  });
}
