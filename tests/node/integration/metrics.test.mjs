// Prometheus /metrics on metrics.port: valid exposition (promtool), expected names and values.
import assert from 'node:assert/strict';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { scrape, findSamples, sampleSum, familyNames, promtoolAvailable, promtoolCheck, PROMTOOL } from '../support/prom.mjs';

const EXPECTED_FAMILIES = [
  'flagrelay_sdk_streams',
  'flagrelay_sdk_stream_connections_total',
  'flagrelay_sdk_stream_slow_disconnects_total',
  'flagrelay_http_requests_total',
  'flagrelay_upstream_connected',
  'flagrelay_upstream_reconnects_total',
  'flagrelay_updates_total',
  'flagrelay_data_age_seconds',
  'flagrelay_cache_commit_duration_seconds',
  'flagrelay_cache_loads_total',
  'flagrelay_snapshot_bytes',
];

relayTest('/metrics: promtool-valid exposition with the documented names and live values', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('m1', 1, 'a')) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  assert.ok(relay.metricsUrl, 'metrics port configured');

  // Activity: one open server stream, polling (200, 304, 401), applied and rejected updates.
  const c = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await c.nextEvent(5000);
  const r1 = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  await httpRequest(`${relay.url}/sdk/latest-all`, { headers: { ...auth(KEYS.prod), 'If-None-Match': r1.headers.etag ?? '"x"' } });
  await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.wrong) });
  up.pushPatch(makeFlag('m1', 2, 'b'));
  up.pushPatchOnly(makeFlag('m1', 1, 'stale'));
  up.pushPatch(makeFlag('m2', 1, 'c'));
  await c.waitForEvent((e) => e.json().path === '/flags/m2', 5000, 'patch m2');

  const m = await scrape(relay);
  assert.equal(m.status, 200, `GET /metrics status ${m.status}`);
  assert.match(m.headers['content-type'] ?? '', /^text\/plain/, `Content-Type ${m.headers['content-type']}`);

  if (promtoolAvailable()) {
    const check = promtoolCheck(m.text);
    assert.equal(check.code, 0, `promtool check metrics exited ${check.code}:\n${check.output}\n--- scrape ---\n${m.text}`);
  } else {
    t.diagnostic(`SKIPPED promtool validation: ${PROMTOOL} not found`);
  }

  const names = familyNames(m.parsed);
  const missing = EXPECTED_FAMILIES.filter((n) => !names.has(n));
  assert.deepEqual(missing, [], `metric families missing from the scrape:\n${m.text}`);
  assert.equal(m.parsed.types.flagrelay_cache_commit_duration_seconds, 'histogram', 'cache commit duration must be a histogram');
  for (const n of ['flagrelay_sdk_stream_connections_total', 'flagrelay_http_requests_total', 'flagrelay_upstream_reconnects_total', 'flagrelay_updates_total', 'flagrelay_cache_loads_total']) {
    const declared = m.parsed.types[n] ?? m.parsed.types[n.replace(/_total$/, '')];
    assert.equal(declared, 'counter', `${n} must be a counter`);
  }

  const p = m.parsed;
  assert.equal(sampleSum(p, 'flagrelay_sdk_streams', { env: 'prod', sdk: 'server' }), 1, 'flagrelay_sdk_streams{env="prod",sdk="server"} with one open /all');
  assert.ok(sampleSum(p, 'flagrelay_sdk_stream_connections_total', { env: 'prod' }) >= 1, 'stream connections counted');
  const ok2xx = findSamples(p, 'flagrelay_http_requests_total', { method: 'GET', status: '2xx' });
  assert.ok(ok2xx.length > 0 && ok2xx.every((x) => 'route' in x.labels), `flagrelay_http_requests_total{route,method="GET",status="2xx"} missing`);
  assert.ok(ok2xx.some((x) => x.labels.route.includes('latest-all') && x.value >= 1), `a 2xx GET on the latest-all route: ${JSON.stringify(ok2xx)}`);
  assert.ok(sampleSum(p, 'flagrelay_http_requests_total', { status: '4xx' }) >= 1, 'the 401 is counted as status="4xx"');
  assert.ok(sampleSum(p, 'flagrelay_http_requests_total', { status: '3xx' }) >= 1, 'the 304 is counted as status="3xx"');
  assert.equal(sampleSum(p, 'flagrelay_upstream_connected', { env: 'prod' }), 1, 'flagrelay_upstream_connected{env="prod"}');
  const updates = findSamples(p, 'flagrelay_updates_total', { env: 'prod' });
  assert.ok(updates.length > 0 && updates.every((x) => 'kind' in x.labels && 'result' in x.labels), `flagrelay_updates_total{env,kind,result}: ${JSON.stringify(updates)}`);
  assert.ok(updates.reduce((a, x) => a + x.value, 0) >= 3, `three updates after the put (2 applied, 1 stale): ${JSON.stringify(updates)}`);
  assert.ok(new Set(updates.map((x) => x.labels.result)).size >= 2, `applied and stale updates must have different result labels: ${JSON.stringify(updates)}`);
  const age = sampleSum(p, 'flagrelay_data_age_seconds', { env: 'prod' });
  assert.ok(age >= 0 && age < 60, `flagrelay_data_age_seconds{env="prod"} = ${age}`);
  assert.ok(sampleSum(p, 'flagrelay_snapshot_bytes', { env: 'prod' }) > 0, 'flagrelay_snapshot_bytes{env="prod"} > 0');
  assert.ok(sampleSum(p, 'flagrelay_cache_commit_duration_seconds_count') >= 1, 'cache commits observed');
  assert.ok(findSamples(p, 'flagrelay_cache_commit_duration_seconds_bucket').some((x) => x.labels.le === '+Inf'), 'histogram has a +Inf bucket');

  // Upstream loss and reconnect are visible.
  await up.close();
  await waitFor(async () => sampleSum((await scrape(relay)).parsed, 'flagrelay_upstream_connected', { env: 'prod' }) === 0, {
    timeoutMs: 3000,
    what: 'flagrelay_upstream_connected{env="prod"} 0 while the upstream is down',
  });
  await up.restart();
  await up.waitForConnections(2, 5000);
  const m2 = await waitFor(async () => {
    const x = (await scrape(relay)).parsed;
    return sampleSum(x, 'flagrelay_upstream_connected', { env: 'prod' }) === 1 ? x : null;
  }, { timeoutMs: 3000, what: 'flagrelay_upstream_connected back to 1' });
  assert.ok(sampleSum(m2, 'flagrelay_upstream_reconnects_total', { env: 'prod' }) >= 1, 'flagrelay_upstream_reconnects_total{env="prod"} >= 1');

  c.close();
  await waitFor(async () => sampleSum((await scrape(relay)).parsed, 'flagrelay_sdk_streams', { env: 'prod', sdk: 'server' }) === 0, {
    timeoutMs: 3000,
    what: 'flagrelay_sdk_streams back to 0 after the client disconnected',
  });
});

relayTest('/metrics after a cache load at startup reports flagrelay_cache_loads_total', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('m1', 1, 'a')) });
  const dir = s.tmpDir();
  const r1 = await s.relay({ dir, upstreamUrl: up.url, environments: prodEnv() });
  await waitFor(async () => (await httpRequest(`${r1.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, { timeoutMs: 5000, what: 'initialized' });
  await r1.terminate();
  await up.close();
  const r2 = await s.relay({ dir, upstreamUrl: up.url, environments: prodEnv() });
  const m = await scrape(r2);
  const loads = findSamples(m.parsed, 'flagrelay_cache_loads_total', { env: 'prod' });
  assert.ok(loads.length > 0 && loads.every((x) => 'outcome' in x.labels), `flagrelay_cache_loads_total{env,outcome}: ${JSON.stringify(loads)}`);
  assert.ok(loads.reduce((a, x) => a + x.value, 0) >= 1, 'one cache load at startup');
  if (promtoolAvailable()) {
    const check = promtoolCheck(m.text);
    assert.equal(check.code, 0, `promtool check metrics exited ${check.code}:\n${check.output}`);
  }
});
