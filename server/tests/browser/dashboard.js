// Drives the dashboard in headless Chromium (the system's, never a downloaded one) against a
// server with real data, and checks what each page shows against what the test expects.
//
//   node dashboard.js CONFIG.json
//
// CONFIG (written by server/tests/it/dashboard.rs): url, admin_token, chromium, artifacts, and
// the expected figures (see `expect` below). Exits 0 when every check passed; otherwise prints
// every failure and exits 1. Screenshots of every page go to the artifacts directory.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const expect = config.expect;
const base = config.url.replace(/\/$/, '');
const failures = [];
const timings = {};
const t0 = Date.now();

function check(ok, what) {
  if (!ok) failures.push(what);
  return ok;
}

function log(msg) {
  process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
}

async function apiGet(path) {
  const r = await fetch(base + path, { headers: { Authorization: `Bearer ${config.admin_token}` } });
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

const userDataDir = mkdtempSync(join(tmpdir(), 'gpulut-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: config.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 1000 },
  acceptDownloads: true,
});
const page = context.pages()[0] || (await context.newPage());

// Everything the page reports as wrong. `allowed` lists messages a step expects (a 404 it
// provokes on purpose); anything else fails the run.
const problems = [];
let allowed = [];
page.on('console', (msg) => {
  if (msg.type() !== 'error') return;
  const text = msg.text();
  if (allowed.some((a) => text.includes(a))) return;
  problems.push(`console error on ${page.url()}: ${text}`);
});
page.on('pageerror', (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
page.on('requestfailed', (req) => {
  const why = req.failure() ? req.failure().errorText : 'failed';
  // Downloads of blob: URLs end the request as "aborted" by design.
  if (req.url().startsWith('blob:') || why === 'net::ERR_ABORTED') return;
  problems.push(`request failed: ${req.method()} ${req.url()}: ${why}`);
});
page.on('response', (res) => {
  if (res.status() >= 400 && !allowed.some((a) => res.url().includes(a))) {
    problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
  }
});

async function shot(name) {
  await page.screenshot({ path: join(config.artifacts, `${name}.png`), fullPage: true });
}

// Navigates to a hash route and waits until that page says it is ready.
async function open(hash, route, name) {
  const started = Date.now();
  await page.goto(`${base}/${hash}`);
  await page.waitForFunction(
    (r) => document.body.dataset.route === r && ['ready', 'error'].includes(document.getElementById('main').dataset.state),
    route,
    { timeout: 30000 },
  );
  const state = await page.evaluate(() => document.getElementById('main').dataset.state);
  if (state === 'error') {
    const text = await page.textContent('#main');
    failures.push(`${hash}: the page shows an error: ${text.trim()}`);
  }
  timings[name] = Date.now() - started;
  return state;
}

// Series of the chart in element #id, by series id: their data counts in ECharts' own model.
async function seriesCounts(id) {
  return page.evaluate((elId) => {
    const el = document.getElementById(elId);
    const c = el && window.echarts.getInstanceByDom(el);
    if (!c) return null;
    const model = c.getModel();
    const out = {};
    for (let i = 0; i < model.getSeriesCount(); i += 1) {
      const s = model.getSeriesByIndex(i);
      out[s.id] = s.getData().count();
    }
    return out;
  }, id);
}

async function step(name, fn) {
  log(name);
  const before = failures.length + problems.length;
  try {
    await fn();
  } catch (e) {
    failures.push(`${name}: ${e.stack || e.message}`);
    try {
      await shot(`failed-${name.replace(/[^a-z0-9]+/gi, '-')}`);
    } catch {
      // the page may be gone
    }
  }
  if (failures.length + problems.length > before) log(`  ${name}: ${failures.length + problems.length - before} problem(s)`);
}

const table = expect.table;
const tableHash = `#/tables/${encodeURIComponent(table.device)}/${encodeURIComponent(table.framework)}?space=${table.space}`;

await step('welcome page without a token', async () => {
  await open('#/devices', 'devices', 'welcome');
  check((await page.textContent('#main')).includes('Paste a bearer token'), 'without a token the page asks for one');
  await shot('00-welcome');
});

await step('devices', async () => {
  await page.fill('#token', config.admin_token);
  await page.click('#token-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('main').dataset.state === 'ready' && document.getElementById('devices-table'));
  const rows = await page.$$eval('#devices-table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  check(rows.length === expect.devices.length, `devices table: ${rows.length} rows, expected ${expect.devices.length}`);
  for (const d of expect.devices) {
    check(rows.some((r) => r.includes(d.name) && r.includes(d.status)), `devices table shows ${d.name} as ${d.status}: ${JSON.stringify(rows)}`);
  }
  check(await page.evaluate(() => sessionStorage.getItem('gpulut.token') !== null), 'the token is kept in sessionStorage');
  check(await page.evaluate(() => sessionStorage.getItem('gpulut.role')) === 'admin', 'the admin token is known as an admin\'s');
  await page.click('#create-enrollment-token');
  await page.waitForSelector('#enroll-commands', { timeout: 10000 });
  const commands = await page.textContent('#enroll-commands');
  check(new RegExp(`^gpulut-agent enroll --server ${base.replace(/[.]/g, '\\.')} --token \\S{20,}\\ngpulut-agent run$`).test(commands),
    `enrollment instructions: ${JSON.stringify(commands)}`);
  await page.waitForSelector('#enroll-tokens table');
  await shot('01-devices');
});

await step('device detail', async () => {
  const d = expect.devices.find((x) => x.gpu);
  await open(`#/devices/${d.id}`, 'devices/:id', 'device');
  const fp = await page.textContent('#fingerprint');
  check(fp.includes(d.gpu), `the fingerprint shows the GPU ${d.gpu}: ${fp}`);
  check(await page.$('#framework-scatter') === null, 'a device with one table in a space has no "Frameworks compared" panel');
  await shot('02-device');
});

await step('device frameworks compared', async () => {
  const sc = expect.scatter;
  const before = problems.length;
  await open(`#/devices/${sc.device}`, 'devices/:id', 'device-frameworks');
  await page.waitForSelector('#framework-scatter', { timeout: 10000 });
  // The panel draws after the page is ready: wait for its chart (or its error box).
  await page.waitForFunction(() => {
    const out = document.getElementById('scatter-out');
    const el = document.getElementById('chart-scatter');
    return (out && out.querySelector('.notice.error')) || (el && window.echarts.getInstanceByDom(el));
  }, null, { timeout: 30000 });
  const error = await page.$('#scatter-out .notice.error');
  check(error === null, `the scatter panel shows an error: ${error ? await error.textContent() : ''}`);
  check(await page.inputValue('#scatter-a') === sc.a && await page.inputValue('#scatter-b') === sc.b,
    `the panel plots ${sc.a} against ${sc.b}: ${await page.inputValue('#scatter-a')} / ${await page.inputValue('#scatter-b')}`);
  const counts = await seriesCounts('chart-scatter');
  check(counts && counts.predicted === sc.points, `predicted scatter points ${JSON.stringify(counts)}, expected ${sc.points}`);
  check(counts && counts.measured === sc.measured_points, `measured scatter points ${JSON.stringify(counts)}, expected ${sc.measured_points}`);
  const tau = (await page.textContent('#scatter-tau')).trim();
  const rho = (await page.textContent('#scatter-rho')).trim();
  check(tau === sc.tau.toFixed(3), `Kendall tau shown ${tau}, the API's ${sc.tau}`);
  check(rho === sc.rho.toFixed(3), `Spearman rho shown ${rho}, the API's ${sc.rho}`);
  check((await page.textContent('#scatter-points')).trim() === String(sc.points), 'the architecture count is shown');
  check(problems.length === before, `no console errors or failed requests on the device page: ${JSON.stringify(problems.slice(before))}`);
  await shot('13-device-frameworks');
});

await step('tables', async () => {
  await open('#/tables', 'tables', 'tables');
  const rows = await page.$$eval('#tables-table tbody tr', (trs) => trs.length);
  check(rows === expect.tables, `tables list: ${rows} rows, expected ${expect.tables}`);
  await shot('03-tables');
});

await step('heatmap', async () => {
  await open(tableHash, 'tables/:device/:framework', 'heatmap');
  const counts = await seriesCounts('chart-heatmap');
  check(counts && counts.cells === table.cells, `heatmap cells: ${JSON.stringify(counts)}, expected ${table.cells}`);
  check((await page.textContent('#heatmap-cells')).startsWith(`${table.cells} /`), 'the cell count is shown');
  // A tooltip (the library writes its styles from script: allowed by the page's policy).
  const box = await page.locator('#chart-heatmap').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + 120);
  await page.waitForFunction(() => /layer \d+, k\d e\d/.test(document.getElementById('chart-heatmap').textContent), null, { timeout: 5000 });
  await shot('04-heatmap');
});

await step('compare', async () => {
  const c = expect.compare;
  // Through the form on the tables page.
  await open('#/tables', 'tables', 'tables-again');
  const options = await page.$$eval('#compare-a option', (os) => os.map((o) => o.textContent));
  const ia = options.findIndex((o) => o.startsWith(c.a_label));
  const ib = options.findIndex((o) => o.startsWith(c.b_label));
  check(ia >= 0 && ib >= 0, `compare options ${JSON.stringify(options)} hold ${c.a_label} and ${c.b_label}`);
  await page.selectOption('#compare-a', String(ia));
  await page.selectOption('#compare-b', String(ib));
  await page.click('#compare-form button[type=submit]');
  await page.waitForFunction(
    () => document.body.dataset.route.startsWith('compare/') && document.getElementById('main').dataset.state === 'ready',
    null,
    { timeout: 30000 },
  );
  const rho = Number(await page.getAttribute('#rho', 'data-value'));
  const tau = Number(await page.getAttribute('#tau', 'data-value'));
  check(Math.abs(rho - c.rho) < 1e-9, `Spearman rho ${rho}, expected ${c.rho}`);
  check(Math.abs(tau - c.tau) < 1e-9, `Kendall tau ${tau}, expected ${c.tau}`);
  check((await page.textContent('#common-blocks')).trim() === String(c.common), 'common block count');
  const ratio = await seriesCounts('chart-ratio');
  check(ratio && ratio.ratio === c.ratio_cells, `ratio heatmap cells ${JSON.stringify(ratio)}, expected ${c.ratio_cells}`);
  const pairs = await seriesCounts('chart-pairs');
  check(pairs && pairs.pairs === c.common, `pairs scatter ${JSON.stringify(pairs)}, expected ${c.common}`);
  await shot('05-compare');
});

await step('validation', async () => {
  const v = expect.validation;
  await open('#/validation', 'validation', 'validation-list');
  const rows = await page.$$eval('#validation-tables tbody tr', (trs) => trs.length);
  check(rows === v.tables, `validation list: ${rows} rows, expected ${v.tables}`);
  await shot('06-validation-list');
  await page.click('#validation-tables a.open-validation');
  await page.waitForFunction(
    () => document.body.dataset.route === 'validation/:device/:framework' && document.getElementById('main').dataset.state === 'ready',
    null,
    { timeout: 30000 },
  );
  const counts = await seriesCounts('chart-validation');
  check(counts && counts.raw === v.raw_points && counts.calibrated === v.calibrated_points,
    `validation scatter ${JSON.stringify(counts)}, expected ${v.raw_points} raw and ${v.calibrated_points} calibrated points`);
  check(counts && counts.identity === 2 && counts.band === 1, `the y = x line and the ±10% band are drawn: ${JSON.stringify(counts)}`);
  const within = (await page.textContent('#cal-within-10')).trim();
  check(within === `${(v.calibrated_within_10pct * 100).toFixed(1)}%`, `calibrated within ±10%: ${within}, expected ${v.calibrated_within_10pct}`);
  await shot('07-validation');
});

let searchId = null;
await step('launch a search from the form', async () => {
  const s = expect.search;
  await open('#/searches', 'searches', 'searches');
  await shot('08-searches-empty');
  await page.selectOption('#search-form select[name=space]', table.space);
  for (const box of await page.$$('#search-tables input[type=checkbox]')) {
    if (await box.isChecked()) await box.uncheck();
  }
  await page.check(`#search-tables input[value="${table.device}|${table.framework}"]`);
  await page.selectOption('#search-form select[name=accuracy]', 'proxy');
  await page.fill('#search-form input[name=population]', String(s.population));
  await page.fill('#search-form input[name=generations]', String(s.generations));
  await page.fill('#search-form input[name=seed]', String(s.seed));
  const started = Date.now();
  await page.click('#launch-search');
  await page.waitForSelector('#search-created', { timeout: 10000 });
  searchId = await page.getAttribute('#search-created', 'data-search');
  check(/^[0-9a-f-]{36}$/.test(searchId || ''), `the created search's id: ${searchId}`);
  await page.waitForSelector(`#searches-table tr[data-search="${searchId}"]`, { timeout: 10000 });
  await page.waitForSelector(`#searches-table tr[data-search="${searchId}"][data-state="done"]`, { timeout: s.timeout_s * 1000 });
  timings.search_to_done = Date.now() - started;
  await shot('09-searches');
});

await step('search page', async () => {
  if (!searchId) throw new Error('no search was launched');
  await page.click(`#searches-table tr[data-search="${searchId}"] a`);
  await page.waitForFunction(
    () => document.body.dataset.route === 'searches/:id' && document.getElementById('main').dataset.state === 'ready'
      && document.getElementById('chart-front'),
    null,
    { timeout: 30000 },
  );
  await page.waitForSelector('#search-state[data-state="done"]');
  const [status, front] = await Promise.all([apiGet(`/v1/searches/${searchId}`), apiGet(`/v1/searches/${searchId}/front`)]);
  check(status.request.population === expect.search.population && status.request.generations === expect.search.generations
    && status.request.seed === expect.search.seed, `the form's values reached the API: ${JSON.stringify(status.request)}`);
  const refs = front.references.filter((r) => typeof r.accuracy === 'number' && typeof r.latency_ms === 'number');
  check(front.front.length > 0, 'the front is not empty');
  check(refs.length >= 3, `the reference networks are on the front's tables: ${refs.length}`);
  const counts = await seriesCounts('chart-front');
  check(counts && counts.front === front.front.length, `front points ${JSON.stringify(counts)}, the API's front has ${front.front.length}`);
  check(counts && counts.references === refs.length, `reference points ${JSON.stringify(counts)}, the API has ${refs.length}`);
  const hv = await seriesCounts('chart-hv');
  check(hv && hv.hypervolume === status.hypervolume.length && status.hypervolume.length === expect.search.generations,
    `hypervolume points ${JSON.stringify(hv)}, the API has ${status.hypervolume.length}`);
  const labels = await page.evaluate(() => {
    const c = window.echarts.getInstanceByDom(document.getElementById('chart-front'));
    const s = c.getModel().getSeriesByIndex(1);
    const d = s.getData();
    const names = [];
    for (let i = 0; i < d.count(); i += 1) names.push(d.getName(i));
    return { names, labelShown: s.get(['label', 'show']) };
  });
  check(labels.labelShown && refs.every((r) => labels.names.includes(r.name)), `reference labels: ${JSON.stringify(labels)}`);
  await shot('10-search');

  const [jsonDownload] = await Promise.all([page.waitForEvent('download'), page.click('#download-json')]);
  const jsonPath = join(config.artifacts, 'front.json');
  await jsonDownload.saveAs(jsonPath);
  const saved = JSON.parse(readFileSync(jsonPath, 'utf8'));
  check(saved.front.length === front.front.length && saved.id === searchId, 'the JSON download is the front');
  const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
  const csvPath = join(config.artifacts, 'front.csv');
  await csvDownload.saveAs(csvPath);
  const lines = readFileSync(csvPath, 'utf8').trim().split('\n');
  check(lines[0] === 'kind,name,arch,accuracy,latency_ms,params,macs', `CSV header: ${lines[0]}`);
  check(lines.filter((l) => l.startsWith('front,')).length === front.front.length, 'the CSV has a row per front member');
  check(lines.filter((l) => l.startsWith('reference,')).length === front.references.length, 'the CSV has a row per reference network');
});

await step('errors show the problem detail', async () => {
  const missing = '00000000-0000-4000-8000-000000000000';
  allowed = [`/v1/searches/${missing}`, 'the server responded with a status of 404'];
  const state = await open(`#/searches/${missing}`, 'searches/:id', 'missing-search');
  check(state === 'error', `a missing search is an error state, not ${state}`);
  const i = failures.findIndex((f) => f.includes(missing) && f.includes('shows an error'));
  if (i >= 0) failures.splice(i, 1); // expected here
  const text = (await page.textContent('#main .notice.error')) || '';
  check(text.includes(`there is no search ${missing}`), `the problem's detail is shown: ${text}`);
  await shot('11-error');
  allowed = [];
});

await step('a user key sees no admin controls', async () => {
  // The role comes from /v1/whoami: no admin-only endpoint is probed, so nothing answers 403
  // and the console stays clean (`allowed` is empty: any error fails the step).
  const before = problems.length;
  const asked = [];
  const track = (req) => asked.push(new URL(req.url()).pathname);
  page.on('request', track);
  await open('#/tables', 'tables', 'tables-as-user');
  await page.fill('#token', config.user_token);
  await page.click('#token-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('main').dataset.state === 'ready');
  await open('#/devices', 'devices', 'devices-as-user');
  await page.waitForSelector('#devices-table');
  page.off('request', track);
  check(await page.$('#enroll') === null, 'no enrollment panel for a user key');
  check(await page.evaluate(() => sessionStorage.getItem('gpulut.role')) === 'user', 'the role is remembered for the tab');
  check(asked.includes('/v1/whoami'), `the role is asked of /v1/whoami: ${JSON.stringify(asked)}`);
  const admin = asked.filter((p) => p.startsWith('/v1/enrollment-tokens') || p.startsWith('/v1/api-keys'));
  check(admin.length === 0, `a user session calls no admin-only endpoint: ${JSON.stringify(admin)}`);
  check(problems.length === before, `a user session has no console errors or failed requests: ${JSON.stringify(problems.slice(before))}`);
  await shot('12-devices-as-user');
});

await context.close();
rmSync(userDataDir, { recursive: true, force: true });

const all = [...failures, ...problems];
const summary = { ok: all.length === 0, failures: all, timings_ms: timings, total_s: (Date.now() - t0) / 1000, search: searchId };
writeFileSync(join(config.artifacts, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
if (all.length) {
  process.stdout.write(`\n${all.length} problem(s):\n${all.map((f) => `  - ${f}`).join('\n')}\n`);
  process.exit(1);
}
log(`all dashboard checks passed; screenshots in ${config.artifacts}`);
