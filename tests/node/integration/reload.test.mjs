// Live reconfiguration and shutdown (issue 8): a reload (SIGHUP or the watched config file) adds
// and removes environments without touching the others' streams, rotates an SDK key with the old
// one accepted until its expiry, and leaves an invalid config unapplied; SIGTERM first turns
// readiness to 503 for shutdown.drainDelay while everything is still served, then closes the SDK
// streams and exits 0.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { relayTest, auth } from '../support/harness.mjs';
import { KEYS, makeFlag } from '../support/flags.mjs';
import { toYaml } from '../support/relay.mjs';
import { httpRequest, waitFor, sleep } from '../support/http.mjs';
import { scrape, findSamples } from '../support/prom.mjs';

const NEW_KEY = 'sdk-99990000-aaaa-bbbb-cccc-ddddeeeeffff';

async function statusOf(relay) {
  const r = await httpRequest(`${relay.url}/status`);
  return JSON.parse(r.body);
}

// Two upstream-backed environments, each with its own flag.
async function setup(s, { extra = {}, environments } = {}) {
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: { 'prod-flag': makeFlag('prod-flag', 1, true) },
    environments: {
      [KEYS.staging]: { flags: { 'staging-flag': makeFlag('staging-flag', 1, 'green') } },
      [NEW_KEY]: { flags: { 'prod-flag': makeFlag('prod-flag', 1, true) } },
    },
  });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: environments ?? {
      prod: { sdkKey: KEYS.prod },
      staging: { sdkKey: KEYS.staging, mobileKey: KEYS.stagingMobile },
    },
    extra,
  });
  return { up, relay };
}

// Writes `config` whole (so that environments can be removed) and sends SIGHUP.
function rewrite(relay, config) {
  relay.config = config;
  relay.reload(`${toYaml(config)}\n`);
}

relayTest('reload: environments are added and removed live; the others\' streams never notice', async (t, s) => {
  const { up, relay } = await setup(s);
  const prod = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await prod.waitForEvent((e) => e.event === 'put', 5000, 'prod put');
  const staging = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.staging) });
  await staging.waitForEvent((e) => e.event === 'put', 5000, 'staging put');
  const prodConnections = up.connectionsFor(KEYS.prod);

  // Remove staging, add qa (on the key the fake upstream knows as NEW_KEY).
  const config = structuredClone(relay.config);
  delete config.environments.staging;
  config.environments.qa = { sdkKey: NEW_KEY };
  rewrite(relay, config);

  await staging.closed;  // the removed environment's streams end (SDKs reconnect elsewhere)
  await waitFor(async () => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(NEW_KEY) })).status === 200, {
    what: 'the added environment serves its data',
  });
  assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.staging) })).status, 401,
    'the removed environment\'s key is unknown now');
  assert.equal((await httpRequest(`${relay.url}/msdk/evalx/contexts/eyJrZXkiOiJhIn0`, { headers: auth(KEYS.stagingMobile) })).status, 401,
    'so is its mobile key');
  const status = await statusOf(relay);
  assert.deepEqual(Object.keys(status.environments), ['prod', 'qa']);

  // prod was not touched: same stream, same upstream connection, and it still gets changes.
  assert.equal(prod.isClosed, false);
  assert.equal(up.connectionsFor(KEYS.prod), prodConnections, 'prod\'s upstream connection was kept');
  up.pushPatch(makeFlag('prod-flag', 2, false));
  await prod.waitForEvent((e) => e.event === 'patch' && JSON.parse(e.data).data.version === 2, 5000, 'prod patch after the reload');

  // The removed environment's series leave /metrics; the added one's appear.
  const m = await scrape(relay);
  assert.equal(findSamples(m.parsed, 'flagrelay_upstream_connected', { env: 'staging' }).length, 0);
  assert.equal(findSamples(m.parsed, 'flagrelay_upstream_connected', { env: 'qa' }).length, 1);
  assert.ok(/environment staging removed: its SDK streams closed/.test(relay.output()));
  assert.ok(/environment qa added/.test(relay.output()));

  // Back again under the same name: served again, its series shown again.
  config.environments.staging = { sdkKey: KEYS.staging };
  rewrite(relay, config);
  await waitFor(async () => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.staging) })).status === 200, {
    what: 'staging back',
  });
});

relayTest('reload: an SDK key rotation keeps streams, reconnects upstream with the new key, and the old key works until its expiry', async (t, s) => {
  const { up, relay } = await setup(s, { environments: { prod: { sdkKey: KEYS.prod } } });
  const old = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await old.waitForEvent((e) => e.event === 'put', 5000, 'put');

  const expiry = new Date(Date.now() + 2500);
  const config = structuredClone(relay.config);
  config.environments.prod = { sdkKey: NEW_KEY, expiringSdkKey: { key: KEYS.prod, expiry: expiry.toISOString() } };
  rewrite(relay, config);
  await waitFor(() => up.connectionsFor(NEW_KEY) === 1, { what: 'the upstream stream reopened with the new key' });

  // Both keys open the environment until the expiry; /status shows the old one masked.
  for (const key of [NEW_KEY, KEYS.prod]) {
    assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(key) })).status, 200, key.slice(-5));
  }
  const status = (await statusOf(relay)).environments.prod;
  assert.equal(status.sdkKey.slice(-5), NEW_KEY.slice(-5));
  assert.equal(status.expiringSdkKey.slice(-5), KEYS.prod.slice(-5));
  assert.ok(!JSON.stringify(status).includes(KEYS.prod), 'never whole');
  assert.equal(old.isClosed, false, 'the stream opened with the old key stays');
  const opened = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await opened.waitForEvent((e) => e.event === 'put', 5000, 'a new stream on the old key');

  // At the expiry the old key is refused, and its streams end; the new key's do not.
  const fresh = await s.sse(`${relay.url}/all`, { headers: auth(NEW_KEY) });
  await fresh.waitForEvent((e) => e.event === 'put', 5000, 'put on the new key');
  await sleep(Math.max(0, expiry.getTime() - Date.now()) + 100);
  assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status, 401);
  await old.closed;
  await opened.closed;
  assert.equal(fresh.isClosed, false);
  assert.equal((await statusOf(relay)).environments.prod.expiringSdkKey, undefined);
  assert.ok(!relay.output().includes(KEYS.prod) && !relay.output().includes(NEW_KEY), 'keys never logged whole');
});

relayTest('reload: an invalid config changes nothing; the watched file applies a change without SIGHUP', async (t, s) => {
  const { relay } = await setup(s, { extra: { reload: { watchInterval: '200ms' } } });
  const staging = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.staging) });
  await staging.waitForEvent((e) => e.event === 'put', 5000, 'staging put');

  // Invalid: an unknown key and a removed environment. Nothing of it is applied.
  const config = structuredClone(relay.config);
  delete config.environments.staging;
  fs.writeFileSync(relay.configPath, `${toYaml({ ...config, listen: { ...config.listen, prot: 1 } })}\n`);
  await waitFor(() => /config file changed: the new config is invalid; keeping the running one/.test(relay.output()), {
    what: 'the invalid file logged',
  });
  assert.ok(/listen\.prot: unknown key/.test(relay.output()));
  await sleep(300);
  assert.equal(staging.isClosed, false);
  assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.staging) })).status, 200);

  // Valid now, with a change that needs a restart: the environments apply, the rest is named.
  fs.writeFileSync(relay.configPath, `${toYaml({ ...config, streams: { ...config.streams, heartbeatInterval: '2s' } })}\n`);
  await staging.closed;
  await waitFor(() => /config file changed: reloaded; changes to streams wait for a restart/.test(relay.output()), {
    what: 'the reload logged',
  });
  assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.staging) })).status, 401);
});

relayTest('shutdown: SIGTERM turns readiness to 503 for drainDelay while serving, then closes streams and exits 0', async (t, s) => {
  const { relay } = await setup(s, {
    environments: { prod: { sdkKey: KEYS.prod } },
    extra: { shutdown: { drainDelay: '1500ms' } },
  });
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200, { what: 'ready' });
  const stream = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await stream.waitForEvent((e) => e.event === 'put', 5000, 'put');

  const sent = Date.now();
  relay.proc.kill('SIGTERM');
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 503, { what: 'readiness 503' });
  // Draining: still serving flags, and the stream is open.
  assert.equal((await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status, 200);
  assert.equal((await httpRequest(`${relay.url}/healthz`)).status, 200, 'alive while draining');
  assert.equal(stream.isClosed, false);

  await stream.closed;
  const closedAfter = Date.now() - sent;
  assert.ok(closedAfter >= 1400, `streams closed after the drain delay (${closedAfter} ms)`);
  const exit = await relay.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(/draining: \/readyz answers 503 for 1500 ms/.test(relay.output()));
});

relayTest('shutdown: a second SIGTERM skips the rest of the drain delay', async (t, s) => {
  const { relay } = await setup(s, {
    environments: { prod: { sdkKey: KEYS.prod } },
    extra: { shutdown: { drainDelay: '60s' } },
  });
  relay.proc.kill('SIGTERM');
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 503, { what: 'draining' });
  relay.proc.kill('SIGTERM');
  const exit = await Promise.race([relay.exited, sleep(5000).then(() => null)]);
  assert.deepEqual(exit, { code: 0, signal: null }, 'exited well before the 60 s drain delay');
  assert.ok(/received SIGTERM again: closing now/.test(relay.output()));
});
