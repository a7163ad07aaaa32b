// The chart's monitoring: the PrometheusRule (promtool check rules, promtool test rules with a
// case per alert) and the Grafana dashboard, and every metric, label and label value that either
// uses checked against a live scrape of the relay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, startRelay } from '../support/relay.mjs';
import { PROMTOOL, scrape } from '../support/prom.mjs';
import { CHART, HELM_TESTS, REPO, one, parseYaml, renderOk, valuesFile } from '../support/helm.mjs';

// Labels Prometheus itself puts on every series of a target; everything else must come from the
// relay.
const TARGET_LABELS = new Set(['job', 'instance']);

let relay;
let dir;
let exported; // metric name -> Map(label -> Set(values))
const { docs } = renderOk({ values: [valuesFile('full')] });
const rule = one(docs, 'PrometheusRule');
const dashboardFile = fs.readFileSync(path.join(CHART, 'dashboards/flagrelay.json'), 'utf8');
const dashboard = JSON.parse(dashboardFile);

before(async () => {
  dir = makeTempDir('flagrelay-helm-scrape-');
  relay = await startRelay({
    dir,
    // A data file, so nothing goes to the network; every series is registered at start-up.
    upstreamUrl: 'http://127.0.0.1:9',
    logLevel: 'info',
    environments: {
      example: {
        sdkKey: 'sdk-00000000-0000-0000-0000-000000000000',
        dataFile: path.join(REPO, 'examples/flags.json'),
        events: { enabled: false },
      },
    },
  });
  const { status, parsed } = await scrape(relay);
  assert.equal(status, 200);
  exported = new Map();
  for (const s of parsed.samples) {
    if (!exported.has(s.name)) exported.set(s.name, new Map());
    const labels = exported.get(s.name);
    for (const [k, v] of Object.entries(s.labels)) {
      if (!labels.has(k)) labels.set(k, new Set());
      labels.get(k).add(v);
    }
  }
});

after(async () => {
  await relay?.kill();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const allRelayLabels = () => new Set([...exported.values()].flatMap((m) => [...m.keys()]));

/**
 * Checks one PromQL expression against the scrape: metric names exist, matchers name labels the
 * metric has (or job/instance), equality and plain alternation matchers name values the relay
 * exports, and grouping clauses use known labels. Returns the problems found.
 */
function promqlProblems(expr, where) {
  const problems = [];
  const known = new Set([...allRelayLabels(), ...TARGET_LABELS]);
  let selectors = 0;
  for (const m of expr.matchAll(/\b(flagrelay_[a-z0-9_]+)\s*(?:\{([^}]*)\})?/g)) {
    selectors++;
    const [, name, matchers = ''] = m;
    const labels = exported.get(name);
    if (!labels) {
      problems.push(`${where}: ${name} is not exported`);
      continue;
    }
    for (const [, label, op, value] of matchers.matchAll(/([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      if (TARGET_LABELS.has(label)) continue;
      if (!labels.has(label)) {
        problems.push(`${where}: ${name} has no label ${label}`);
        continue;
      }
      if (value.includes('$')) continue; // a dashboard variable
      // A regex matcher is checked when it is a plain alternation of literal values.
      const literal = op === '=' || op === '!=';
      const values = literal ? [value] : /^[^.*+?()[\]{}^$\\]+$/.test(value) ? value.split('|') : [];
      for (const v of values) if (!labels.get(label).has(v)) problems.push(`${where}: ${name}{${label}} never is "${v}"`);
    }
  }
  if (selectors === 0) problems.push(`${where}: no flagrelay metric in ${expr}`);
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      if (!known.has(label) && label !== 'le') problems.push(`${where}: grouping by unknown label ${label}`);
    }
  }
  return problems;
}

function promtool(args, cwd) {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 30000 });
  if (r.error) throw new Error(`${PROMTOOL}: ${r.error.message} (Debian package prometheus)`);
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

test('the expression checker finds a metric, label or value the relay does not export', () => {
  assert.deepEqual(promqlProblems('flagrelay_upstream_state{job="x",state="off"} == 1', 'ok'), []);
  assert.equal(promqlProblems('flagrelay_upstream_conected == 0', 'name').length, 1);
  assert.equal(promqlProblems('flagrelay_upstream_state{state="offline"} == 1', 'value').length, 1);
  assert.equal(promqlProblems('flagrelay_events_dropped_total{reason!~"disabled|rate-limited"}', 'alt').length, 1);
  assert.equal(promqlProblems('flagrelay_http_requests_total{env="production"}', 'label').length, 1);
  assert.equal(promqlProblems('sum by (environment) (flagrelay_sdk_streams)', 'by').length, 1);
});

test('PrometheusRule: promtool check rules accepts the groups', () => {
  const tmp = makeTempDir('flagrelay-helm-rules-');
  try {
    const file = path.join(tmp, 'rules.yaml');
    fs.writeFileSync(file, JSON.stringify({ groups: rule.spec.groups }, null, 2));
    const r = promtool(['check', 'rules', file]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS: 9 rules found/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('PrometheusRule: every alert fires and clears as its promtool unit test expects', () => {
  const tmp = makeTempDir('flagrelay-helm-rules-');
  try {
    const groups = rule.spec.groups.map((g) => ({ ...g, rules: g.rules.map(({ annotations, ...r }) => r) }));
    fs.writeFileSync(path.join(tmp, 'rules.yaml'), JSON.stringify({ groups }, null, 2));
    fs.copyFileSync(path.join(HELM_TESTS, 'rules/alerts.test.yaml'), path.join(tmp, 'alerts.test.yaml'));
    const r = promtool(['test', 'rules', 'alerts.test.yaml'], tmp);
    assert.equal(r.code, 0, r.output);
    // Every alert has a test case.
    const tests = parseYaml(fs.readFileSync(path.join(HELM_TESTS, 'rules/alerts.test.yaml'), 'utf8'));
    const tested = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length).map((a) => a.alertname)));
    for (const g of rule.spec.groups) for (const { alert } of g.rules) assert.ok(tested.has(alert), `${alert} has a unit test that fires it`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('PrometheusRule: only metrics, labels and values the relay exports; each alert documented in docs/alerts.md', () => {
  const alertsDoc = fs.readFileSync(path.join(REPO, 'docs/alerts.md'), 'utf8');
  const known = new Set([...allRelayLabels(), ...TARGET_LABELS]);
  for (const g of rule.spec.groups) {
    for (const r of g.rules) {
      assert.deepEqual(promqlProblems(r.expr, r.alert), []);
      assert.match(r.expr, /job="regional-flagrelay"/, `${r.alert} is limited to the release's series`);
      for (const text of Object.values(r.annotations)) {
        for (const [, label] of text.matchAll(/\$labels\.(\w+)/g)) assert.ok(known.has(label), `${r.alert}: $labels.${label}`);
      }
      assert.ok(['warning', 'critical'].includes(r.labels.severity));
      assert.equal(r.annotations.runbook_url, `https://wiki.example.com/flagrelay/alerts#${r.alert.toLowerCase()}`);
      assert.match(alertsDoc, new RegExp(`^### ${r.alert}$`, 'm'), `docs/alerts.md has a section for ${r.alert}`);
    }
  }
});

test('dashboard: the env and job variables, every panel on the datasource variable, a grid without overlaps', () => {
  assert.equal(dashboard.uid, 'flagrelay');
  const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
  assert.deepEqual(Object.keys(vars).sort(), ['datasource', 'env', 'job']);
  assert.equal(vars.datasource.type, 'datasource');
  assert.match(vars.env.query.query, /^label_values\(flagrelay_\w+\{job=~"\$job"\}, env\)$/);
  assert.match(vars.job.query.query, /^label_values\(flagrelay_\w+, job\)$/);
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
  const cells = new Set();
  for (const p of dashboard.panels) {
    const { x, y, w, h } = p.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `${p.title}: within 24 columns`);
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        assert.ok(!cells.has(`${i},${j}`), `${p.title} overlaps another panel`);
        cells.add(`${i},${j}`);
      }
    }
    if (p.type === 'row') continue;
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
    assert.ok(p.targets.length > 0, p.title);
    assert.ok(p.description, `${p.title} says what it shows`);
  }
  const titles = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.deepEqual(titles, ['Upstream', 'Data', 'SDKs and requests', 'Events', 'Cache']);
});

test('dashboard: every query uses exported metrics and labels, is filtered by $job (and $env where there is one), and parses', () => {
  const tmp = makeTempDir('flagrelay-helm-dash-');
  try {
    const known = new Set([...allRelayLabels(), ...TARGET_LABELS]);
    const rules = [];
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      assert.deepEqual(promqlProblems(v.query.query.replace(/^label_values\((.*), \w+\)$/, '$1'), `variable ${v.name}`), []);
    }
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      for (const t of p.targets) {
        const where = `${p.title} ${t.refId}`;
        assert.deepEqual(promqlProblems(t.expr, where), []);
        for (const m of t.expr.matchAll(/\b(flagrelay_[a-z0-9_]+)\s*(\{[^}]*\})?/g)) {
          const [, name, matchers = ''] = m;
          assert.match(matchers, /job=~"\$job"/, `${where}: ${name} filtered by $job`);
          if (exported.get(name).has('env')) assert.match(matchers, /env=~"\$env"/, `${where}: ${name} filtered by $env`);
        }
        for (const [, label] of (t.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
          assert.ok(known.has(label), `${where}: legend {{${label}}}`);
          assert.match(t.expr, new RegExp(`by \\([^)]*\\b${label}\\b`), `${where}: legend {{${label}}} is kept by the query`);
        }
        const expr = t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.*').replaceAll('$env', '.*');
        rules.push({ record: `dashboard:panel${p.id}:${t.refId}`, expr });
      }
    }
    const file = path.join(tmp, 'dashboard-queries.yaml');
    fs.writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = promtool(['check', 'rules', file]);
    assert.equal(r.code, 0, r.output);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('dashboard ConfigMap: the file as is, labelled for Grafana\'s sidecar', () => {
  const cm = docs.map((d) => d.obj).find((o) => o.kind === 'ConfigMap' && o.data['flagrelay.json']);
  assert.equal(cm.metadata.labels.grafana_dashboard, '1');
  assert.equal(cm.metadata.annotations.grafana_folder, 'Flags');
  assert.equal(cm.data['flagrelay.json'], dashboardFile.replace(/\n$/, ''));
  const off = renderOk({ values: [valuesFile('standalone')] });
  assert.ok(!off.docs.some((d) => d.obj.data?.['flagrelay.json']), 'off by default');
});
