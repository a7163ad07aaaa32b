// docs/guides/chained-relays.md, run for real on loopback: the guide's regional relay (fed by a
// fake LaunchDarkly) and two sidecars built from the guide's sidecar config, the guide's checks,
// a flag change reaching both sidecars' SDK streams over exactly one upstream stream per
// environment, events through both hops, and the failure table's rows for the regional relay.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { freePort } from '../support/ports.mjs';
import { startFakeEvents } from '../support/fake-events.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { assertAllPut } from '../support/assertions.mjs';
import { waitEnv, stateIs, statusJson, latestAll } from '../support/faults.mjs';
import { scrape, findSamples } from '../support/prom.mjs';
import { readGuide, block, blockIds, rewrite, runShell, shellReport, startYamlRelay } from './guide-blocks.mjs';

const guide = readGuide('chained-relays.md');

// The keys the guide's configs read from the environment.
const KEY_ENV = {
  PRODUCTION_SDK_KEY: KEYS.prod,
  PRODUCTION_MOBILE_KEY: KEYS.prodMobile,
  PRODUCTION_CLIENT_SIDE_ID: KEYS.prodEnvId,
  STAGING_SDK_KEY: KEYS.staging,
};
// Events leave each hop after 100 ms instead of 5 s (ld-relay's variable, which flagrelay reads).
const FAST_EVENTS = { EVENTS_FLUSH_INTERVAL: '100ms' };

relayTest('every tagged block of the chained-relays guide is run by this test', () => {
  assert.deepEqual(blockIds(guide).sort(), ['check-regional', 'check-regional-output', 'check-sidecar', 'regional', 'sidecar', 'start-regional'].sort());
});

/** The guide's regional relay, its config at etc/flagrelay/regional.yaml under `root`. */
async function startRegional(s, { root, port, metricsPort, upstreamUrl, eventsUrl, label = 'regional' }) {
  const yaml = rewrite(block(guide, 'regional'), [
    ['0.0.0.0', '127.0.0.1'],
    ['port: 8030', `port: ${port}`],
    ['port: 8031', `port: ${metricsPort}`],
    ['/var/lib/flagrelay', path.join(root, 'var/lib/flagrelay')],
  ]);
  // Where LaunchDarkly is: ld-relay's variables, read by flagrelay as well.
  const env = { ...KEY_ENV, ...FAST_EVENTS, STREAM_URI: upstreamUrl, BASE_URI: upstreamUrl, EVENTS_URI: eventsUrl };
  const start = rewrite(block(guide, 'start-regional'), [['/etc/flagrelay', path.join(root, 'etc/flagrelay')]]).trim().split('\n');
  assert.equal(start.length, 2, 'start-regional: a check, then the run');
  fs.mkdirSync(path.join(root, 'etc/flagrelay'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/flagrelay/regional.yaml'), yaml);
  const check = await runShell(s, start[0], { cwd: root, env });
  assert.equal(check.code, 0, shellReport(check));
  assert.match(check.stdout, /valid \(2 environments\)/);
  assert.equal(start[1], `flagrelay --config ${path.join(root, 'etc/flagrelay/regional.yaml')}`, 'the run line is what startYamlRelay runs');
  return startYamlRelay(s, { yaml, port, metricsPort, env, label, dir: path.join(root, 'etc/flagrelay'), file: 'regional.yaml' });
}

/** A sidecar from the guide's config, pointed at the regional relay on `regionalPort`. */
async function startSidecar(s, { root, port, metricsPort, regionalPort, label }) {
  const yaml = rewrite(block(guide, 'sidecar'), [
    ['http://flagrelay-regional.dc1.internal:8030', `http://127.0.0.1:${regionalPort}`],
    ['port: 8030', `port: ${port}`],
    ['port: 8031', `port: ${metricsPort}`],
    ['/var/lib/flagrelay', path.join(root, 'var/lib/flagrelay')],
  ]);
  return startYamlRelay(s, { yaml, port, metricsPort, env: { ...KEY_ENV, ...FAST_EVENTS }, label, dir: path.join(root, 'etc/flagrelay'), file: 'sidecar.yaml' });
}

const ports = async () => ({ port: await freePort(), metricsPort: await freePort() });

relayTest('chained relays: two sidecars behind the regional relay; one upstream stream per environment; changes and events cross both hops; the failure table', async (t, s) => {
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(makeFlag('checkout', 1, 'old')),
    environments: { [KEYS.staging]: { flags: byKey(makeFlag('search', 1, 'v1')) } },
    heartbeatMs: 1000,
  });
  const events = await startFakeEvents();
  s.defer(() => events.close());

  const regionalRoot = s.tmpDir('flagrelay-regional-');
  const rp = await ports();
  const regional = await startRegional(s, { root: regionalRoot, ...rp, upstreamUrl: up.url, eventsUrl: events.url });
  const sidecars = [];
  for (const name of ['a', 'b']) {
    const root = s.tmpDir(`flagrelay-sidecar-${name}-`);
    const p = await ports();
    sidecars.push({ root, ...p, relay: await startSidecar(s, { root, ...p, regionalPort: rp.port, label: `sidecar ${name}` }) });
  }
  for (const sc of sidecars) {
    for (const env of ['production', 'staging']) {
      await waitEnv(sc.relay, (e) => stateIs('VALID')(e) && e.dataSource === 'upstream', { env, what: `${sc.relay.label} ${env} VALID from the regional relay` });
    }
  }

  // §3, on a sidecar: the check-config and /status lines, as written.
  const sc0 = sidecars[0];
  const check = await runShell(s, rewrite(block(guide, 'check-sidecar'), [
    ['/etc/flagrelay', path.join(sc0.root, 'etc/flagrelay')],
    ['127.0.0.1:8030', `127.0.0.1:${sc0.port}`],
  ]), { cwd: sc0.root, env: KEY_ENV });
  assert.equal(check.code, 0, shellReport(check));
  assert.match(check.stdout, /sidecar\.yaml: valid \(2 environments\)/);
  const status = JSON.parse(check.stdout.slice(check.stdout.indexOf('{')));
  for (const env of ['production', 'staging']) {
    const e = status.environments[env];
    assert.equal(e.status, 'connected', `${env}: ${JSON.stringify(e)}`);
    assert.equal(e.connectionStatus.state, 'VALID');
    assert.equal(e.connectionStatus.mode, 'streaming');
    assert.equal(e.dataSource, 'upstream');
  }

  // SDK streams on both sidecars, both environments: a put, then the change made upstream.
  const streams = [];
  for (const sc of sidecars) {
    for (const [env, key, flag] of [['production', KEYS.prod, makeFlag('checkout', 1, 'old')], ['staging', KEYS.staging, makeFlag('search', 1, 'v1')]]) {
      const sse = await s.sse(`${sc.relay.url}/all`, { headers: auth(key) });
      assertAllPut(await sse.nextEvent(3000), byKey(flag), {}, `${sc.relay.label} ${env} put`);
      streams.push({ env, sse, label: `${sc.relay.label} ${env}` });
    }
  }
  up.pushPatch(makeFlag('checkout', 2, 'new'));
  up.pushPatch(makeFlag('search', 2, 'v2'), { key: KEYS.staging });
  for (const { env, sse, label } of streams) {
    const ev = await sse.nextEvent(3000);
    assert.equal(ev.event, 'patch', label);
    const { path: itemPath, data } = ev.json();
    assert.equal(itemPath, env === 'production' ? '/flags/checkout' : '/flags/search', label);
    assert.equal(data.version, 2, label);
  }

  // What the chain is for: LaunchDarkly saw one stream per environment, from the regional relay.
  assert.equal(up.streamRequests(KEYS.prod).length, 1, 'production: one stream to LaunchDarkly');
  assert.equal(up.streamRequests(KEYS.staging).length, 1, 'staging: one stream to LaunchDarkly');
  assert.equal(up.streamRequests().length, 2, 'no other stream request reached LaunchDarkly');
  assert.equal(up.polls.length, 0, 'nobody polled LaunchDarkly');

  // §3, on the regional relay: the metrics line and the output the guide shows.
  const metrics = await runShell(s, rewrite(block(guide, 'check-regional'), [
    ['flagrelay-regional.dc1.internal:8031', `127.0.0.1:${rp.metricsPort}`],
  ]), { cwd: regionalRoot });
  assert.equal(metrics.code, 0, shellReport(metrics));
  for (const line of block(guide, 'check-regional-output').trim().split('\n')) {
    if (line.trim() === '...') continue;
    assert.ok(metrics.stdout.split('\n').includes(line), `the guide shows '${line}'; the regional relay says:\n${metrics.stdout}`);
  }
  const m = (await scrape(regional)).parsed;
  for (const env of ['production', 'staging']) {
    assert.equal(findSamples(m, 'flagrelay_sdk_streams', { env, sdk: 'server' })[0]?.value, 2, `${env}: one stream per sidecar`);
    assert.equal(findSamples(m, 'flagrelay_upstream_connected', { env })[0]?.value, 1, `${env}: one upstream connection`);
  }

  // Events: SDK -> sidecar -> regional relay -> LaunchDarkly, server and mobile.
  const now = Date.now();
  const serverEvent = { kind: 'custom', key: 'chained-server', creationDate: now, contextKeys: { user: 'u1' } };
  const mobileEvent = { kind: 'custom', key: 'chained-mobile', creationDate: now, contextKeys: { user: 'u2' } };
  const post = (p, key, ev) => httpRequest(`${sidecars[1].relay.url}${p}`, {
    method: 'POST',
    headers: { ...auth(key), 'Content-Type': 'application/json', 'X-LaunchDarkly-Event-Schema': '4' },
    body: JSON.stringify([ev]),
  });
  assert.equal((await post('/bulk', KEYS.prod, serverEvent)).status, 202);
  assert.equal((await post('/mobile', KEYS.prodMobile, mobileEvent)).status, 202);
  const arrived = (p, key) => events.received.find((r) => r.url === p && Array.isArray(r.events) && r.events.some((e) => e.key === key));
  const server = await waitFor(() => arrived('/bulk', 'chained-server'), { what: 'the server event at LaunchDarkly', timeoutMs: 5000 });
  const mobile = await waitFor(() => arrived('/mobile', 'chained-mobile'), { what: 'the mobile event at LaunchDarkly', timeoutMs: 5000 });
  assert.equal(server.headers.authorization, KEYS.prod, 'forwarded with the regional relay\'s SDK key');
  assert.equal(mobile.headers.authorization, KEYS.prodMobile, 'forwarded with the regional relay\'s mobile key');

  // Failure table, row 1: the regional relay stops (killed: the harsher case). Sidecars keep
  // serving and say INTERRUPTED.
  await regional.kill();
  for (const sc of sidecars) {
    await waitEnv(sc.relay, stateIs('INTERRUPTED'), { env: 'production', what: `${sc.relay.label} INTERRUPTED` });
    const r = await latestAll(sc.relay, KEYS.prod);
    assert.equal(r.status, 200);
    assert.equal(r.body.flags.checkout.version, 2, `${sc.relay.label} keeps its last data`);
  }

  // Row 3: it comes back while LaunchDarkly is unreachable. It serves its cache; the sidecars
  // reconnect, get it as a put, and are VALID: only the regional relay shows the stale source.
  up.allStatus = 503;
  const regional2 = await startRegional(s, { root: regionalRoot, ...rp, upstreamUrl: up.url, eventsUrl: events.url, label: 'regional (restarted)' });
  await waitEnv(regional2, (e) => e.dataSource === 'cache', { env: 'production', what: 'the regional relay serves its cache' });
  for (const sc of sidecars) {
    await waitEnv(sc.relay, stateIs('VALID'), { env: 'production', timeoutMs: 8000, what: `${sc.relay.label} VALID again, from the regional relay's cache` });
  }
  const prodStream = streams.find((x) => x.env === 'production');
  const put = await prodStream.sse.waitForEvent((ev) => ev.event === 'put', 3000, 'a put after the reconnect');
  assert.equal(put.json().data.flags.checkout.version, 2, 'the put carries the cached data');
  const rm = (await scrape(regional2)).parsed;
  assert.equal(findSamples(rm, 'flagrelay_data_source', { env: 'production', source: 'cache' })[0]?.value, 1);
  assert.equal(findSamples(rm, 'flagrelay_upstream_connected', { env: 'production' })[0]?.value, 0);
  const sidecarStatus = await statusJson(sidecars[0].relay);
  assert.equal(sidecarStatus.environments.production.dataSource, 'upstream', 'a sidecar cannot tell');

  // Row 2: a sidecar restarts while the regional relay is down: it serves its own cache. (Its
  // SDKs go with it, as in a pod that restarts.)
  await regional2.kill();
  const b = sidecars[1];
  for (const x of streams.filter((x) => x.label.startsWith(b.relay.label))) x.sse.close();
  await b.relay.terminate();
  const b2 = await startSidecar(s, { root: b.root, port: b.port, metricsPort: b.metricsPort, regionalPort: rp.port, label: 'sidecar b (restarted)' });
  await waitEnv(b2, (e) => e.dataSource === 'cache', { env: 'production', what: 'the restarted sidecar serves its cache' });
  const served = await latestAll(b2, KEYS.prod);
  assert.equal(served.status, 200);
  assert.equal(served.body.flags.checkout.version, 2);
  assert.equal((await httpRequest(`${b2.url}/readyz`)).status, 200, 'ready on its cache (readiness.mode: data)');
  const bm = (await scrape(b2)).parsed;
  assert.equal(findSamples(bm, 'flagrelay_data_source', { env: 'production', source: 'cache' })[0]?.value, 1);
});
