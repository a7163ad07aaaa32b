// Start-up faults: upstream.initTimeout with a cache, and upstream.exitOnError.
import assert from 'node:assert/strict';
import path from 'node:path';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, sleep, delayUnref } from '../support/http.mjs';
import { freePort } from '../support/ports.mjs';
import { assertAllPut, assertFlagsMap } from '../support/assertions.mjs';
import { FAST, SLACK_MS, waitEnv, stateIs, latestAll, report, envStatus, faultTest } from '../support/faults.mjs';

const V1 = byKey(makeFlag('f', 1, 'cached-v1'));
const V2 = byKey(makeFlag('f', 2, 'live-v2'));

/** Runs a relay once against a fake upstream serving V1 so that the cache in `dir` holds V1. */
async function seedCache(s) {
  const dir = s.tmpDir();
  const cacheDir = path.join(dir, 'cache');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: V1 });
  const r = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'seed' });
  await waitEnv(r, stateIs('VALID'), { what: 'seed relay VALID' });
  await r.terminate();
  await up.close();
  return { dir, cacheDir, up };
}

/** Polls /sdk/latest-all every 50 ms from now; resolves {at, status, body} of the first 200 (bounded). */
async function firstServed(relay, since, timeoutMs, seen = []) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await latestAll(relay, KEYS.prod).catch((err) => ({ status: `error ${err.message}` }));
    seen.push(r.status);
    if (r.status === 200) return { at: Date.now() - since, ...r };
    await sleep(50);
  }
  throw new Error(`no 200 from /sdk/latest-all within ${timeoutMs} ms (statuses ${[...new Set(seen)].join(',')})`);
}

faultTest('initTimeout: with a cache and a reachable upstream, data is served only once the upstream put arrives', async (t, s) => {
  const { dir, cacheDir, up } = await seedCache(s);
  up.setData({ flags: V2 });
  up.sendPut = false; // accepts the stream, stays silent until pushPut
  await up.restart();
  const spawnAt = Date.now();
  const relay = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: prodEnv(), upstream: { ...FAST, initTimeout: '5s', readTimeout: '10s' } });
  await up.waitForOpenStream(KEYS.prod, 3000);
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  const early = await latestAll(relay, KEYS.prod);
  s.note(`initTimeout (cache, silent upstream): polling status ${early.status} before the put`);
  assert.notEqual(early.status, 200, `cached data served ${Date.now() - spawnAt} ms after start although the upstream is reachable and initTimeout (5 s) has not passed: ${JSON.stringify(early.body).slice(0, 200)}`);
  await sleep(700);
  assert.notEqual((await latestAll(relay, KEYS.prod)).status, 200, 'still waiting for the upstream put');
  assert.equal(sse.events.length, 0, `no downstream put before the upstream put: ${sse.events.map((e) => e.data.slice(0, 100)).join(' | ')}`);
  const putAt = Date.now();
  up.pushPut({ flags: V2 });
  const first = await firstServed(relay, putAt, 3000);
  report(t, s, 'initTimeout (cache, silent upstream): served after the put', first.at);
  assertFlagsMap(first.body.flags, V2, 'first data served is the upstream put, not the cache');
  assertAllPut(await sse.nextEvent(3000), V2, {}, 'first downstream put');
  assert.equal((await envStatus(relay)).dataSource, 'upstream');
});

faultTest('initTimeout: with a cache and an upstream that never sends a put, the cache is served after initTimeout', async (t, s) => {
  const { dir, cacheDir, up } = await seedCache(s);
  up.sendPut = false;
  await up.restart();
  const spawnAt = Date.now();
  const relay = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: prodEnv(), upstream: { ...FAST, initTimeout: '2s', readTimeout: '10s' } });
  const first = await firstServed(relay, spawnAt, 2000 + SLACK_MS + 2000);
  report(t, s, 'initTimeout 2s (cache, silent upstream): cache served after spawn', first.at);
  assert.ok(first.at >= 1800, `cache served ${first.at} ms after spawn, before initTimeout (2 s)`);
  assert.ok(first.at <= 2000 + SLACK_MS, `cache served ${first.at} ms after spawn (bound initTimeout 2 s + ${SLACK_MS} ms)`);
  assertFlagsMap(first.body.flags, V1, 'cached data');
  const e = await envStatus(relay);
  assert.equal(e.dataSource, 'cache');
  assert.notEqual(e.connectionStatus.state, 'VALID');
  assert.equal((await httpRequest(`${relay.url}/readyz`)).status, 200, '/readyz (mode data) with cached data');
});

faultTest('initTimeout: when the first connection is refused, the cache is served at once', async (t, s) => {
  const { dir, cacheDir } = await seedCache(s);
  const spawnAt = Date.now();
  const relay = await s.relay({ dir, cacheDir, upstreamUrl: `http://127.0.0.1:${await freePort()}`, environments: prodEnv(), upstream: { ...FAST, initTimeout: '5s' } });
  const first = await firstServed(relay, spawnAt, 6000);
  report(t, s, 'initTimeout 5s, refused upstream: cache served after spawn', first.at);
  assert.ok(first.at < 1500 + SLACK_MS, `cache served ${first.at} ms after spawn: the refused first connection must end the initTimeout (5 s) wait`);
  assertFlagsMap(first.body.flags, V1, 'cached data');
  assert.equal((await envStatus(relay)).connectionStatus.lastError?.kind, 'NETWORK_ERROR');
});

async function expectExit(t, s, relay, spawnAt, boundMs, what) {
  const info = await Promise.race([relay.exited, delayUnref(boundMs).then(() => null)]);
  const ms = Date.now() - spawnAt;
  report(t, s, `exitOnError (${what}): exit after`, ms, `ms (${JSON.stringify(info)})`);
  assert.ok(info, `exitOnError: true and ${what}: still running ${boundMs} ms after start`);
  assert.equal(info.signal, null, `killed by a signal: ${JSON.stringify(info)}`);
  assert.equal(typeof info.code, 'number');
  assert.notEqual(info.code, 0, `exit code must be non-zero: ${JSON.stringify(info)}`);
  return ms;
}

faultTest('exitOnError: true with a refused upstream: non-zero exit within about initTimeout', async (t, s) => {
  const spawnAt = Date.now();
  const relay = await s.relay({
    upstreamUrl: `http://127.0.0.1:${await freePort()}`,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { ...FAST, initTimeout: '2s', exitOnError: true },
    waitHealthy: false,
  });
  await expectExit(t, s, relay, spawnAt, 2000 + SLACK_MS + 1000, 'refused');
}, { allowExit: true });

faultTest('exitOnError: true with a rejected key (401): non-zero exit within about initTimeout', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.staging, flags: {} });
  const spawnAt = Date.now();
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { ...FAST, initTimeout: '2s', exitOnError: true },
    waitHealthy: false,
  });
  await expectExit(t, s, relay, spawnAt, 2000 + SLACK_MS + 1000, '401');
  assert.equal(up.streamRequests(KEYS.prod).length, 1, 'the rejected key was not retried');
}, { allowExit: true });

faultTest('exitOnError: false with a refused upstream keeps running and serving the cache', async (t, s) => {
  const { dir, cacheDir } = await seedCache(s);
  const relay = await s.relay({
    dir,
    cacheDir,
    upstreamUrl: `http://127.0.0.1:${await freePort()}`,
    environments: prodEnv(),
    upstream: { ...FAST, initTimeout: '1s', exitOnError: false },
  });
  await sleep(2500);
  assert.ok(relay.running(), `relay exited: ${JSON.stringify(relay.exitInfo)}`);
  const r = await latestAll(relay, KEYS.prod);
  assert.equal(r.status, 200);
  assertFlagsMap(r.body.flags, V1, 'cached data');
  assert.equal((await httpRequest(`${relay.url}/healthz`)).status, 200);
});
