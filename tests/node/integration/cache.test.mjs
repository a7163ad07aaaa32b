// LMDB cache: a restart with the upstream down serves the last committed state at once; when the
// upstream returns, its put replaces the cached data.
import assert from 'node:assert/strict';
import path from 'node:path';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { assertAllPut, assertFlagsMap, assertSegmentsMap } from '../support/assertions.mjs';

const statusOf = async (relay) => (await httpRequest(`${relay.url}/status`)).json();

relayTest('restart with the upstream down serves cached data, then switches to the upstream', async (t, s) => {
  const dir = s.tmpDir();
  const cacheDir = path.join(dir, 'cache');
  const f1 = makeFlag('cached-flag', 1, 'v1');
  const f2 = makeFlag('other', 4, true);
  const seg = makeSegment('cached-seg', 2, ['u']);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f1, f2), segments: byKey(seg) });

  // Run 1: learn the data, apply a patch and a delete.
  const relay1 = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: prodEnv(), label: 'run 1' });
  const f1v2 = makeFlag('cached-flag', 2, 'v2-patched');
  await waitFor(async () => (await httpRequest(`${relay1.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, {
    timeoutMs: 5000,
    what: 'run 1 initialized',
  });
  up.pushPatch(f1v2);
  up.pushDelete('flags', 'other', 5);
  await waitFor(async () => {
    const r = await httpRequest(`${relay1.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
    const b = r.json();
    return b.flags['cached-flag']?.version === 2 && !b.flags.other;
  }, { timeoutMs: 3000, what: 'run 1 published the patch and the delete' });
  // Published implies committed: a crash right now must not lose it.
  await relay1.kill();

  // Run 2: the upstream is down.
  await up.close();
  const t0 = Date.now();
  const relay2 = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: prodEnv(), label: 'run 2 (upstream down)' });
  // Served once the first upstream attempt fails (refused at once); /healthz may answer first,
  // so allow the attempt its moment (a sanitizer build is several times slower).
  let r;
  await waitFor(async () => (r = await httpRequest(`${relay2.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, {
    timeoutMs: 1000,
    intervalMs: 10,
    what: 'cached data served right after start-up, with the upstream down',
  });
  s.note(`run 2: first /sdk/latest-all ${Date.now() - t0} ms after spawn -> ${r.status}`);
  assertFlagsMap(r.json().flags, byKey(f1v2), 'cached flags');
  assertSegmentsMap(r.json().segments, byKey(seg), 'cached segments');
  assert.equal((await httpRequest(`${relay2.url}/readyz`)).status, 200, '/readyz with cached data');

  const c = await s.sse(`${relay2.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await c.nextEvent(3000), byKey(f1v2), byKey(seg), 'put from cache');

  const st = await statusOf(relay2);
  assert.equal(st.environments?.prod?.dataSource, 'cache', `/status dataSource with upstream down: ${JSON.stringify(st.environments?.prod)}`);
  assert.notEqual(st.environments.prod.connectionStatus?.state, 'VALID', 'upstream is down: state must not be VALID');

  // The upstream comes back with new data.
  const f3 = makeFlag('fresh', 1, 'from-upstream');
  const f1v9 = makeFlag('cached-flag', 9, 'v9-upstream');
  up.setData({ flags: byKey(f1v9, f3), segments: {} });
  await up.restart();
  const put = await c.waitForEvent((e) => e.event === 'put', 5000, 'put from the returning upstream');
  assertAllPut(put, byKey(f1v9, f3), {}, 'put after the upstream returned');
  assert.equal(up.connections, 2, 'exactly one new upstream connection after it returned');
  await waitFor(async () => {
    const x = (await statusOf(relay2)).environments.prod;
    return x.dataSource === 'upstream' && x.connectionStatus?.state === 'VALID' && x.status === 'connected';
  }, { timeoutMs: 3000, what: '/status prod: dataSource upstream, VALID, connected' });
  const r2 = await httpRequest(`${relay2.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assertFlagsMap(r2.json().flags, byKey(f1v9, f3), 'flags after the upstream returned');
  assertSegmentsMap(r2.json().segments, {}, 'segments after the upstream returned');
  await relay2.kill();

  // Run 3 (upstream down again): the cache now holds the upstream's put.
  await up.close();
  const relay3 = await s.relay({ dir, cacheDir, upstreamUrl: up.url, environments: prodEnv(), label: 'run 3' });
  const r3 = await httpRequest(`${relay3.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.equal(r3.status, 200);
  assertFlagsMap(r3.json().flags, byKey(f1v9, f3), 'run 3 cached flags');
  assertSegmentsMap(r3.json().segments, {}, 'run 3 cached segments');
});

relayTest('without a cache, a restart with the upstream down has no data (503)', async (t, s) => {
  // Control for the test above: proves the data there came from the cache, not from elsewhere.
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('a', 1, 1)) });
  const dir = s.tmpDir();
  const relay1 = await s.relay({ dir, cacheDir: null, upstreamUrl: up.url, environments: prodEnv() });
  await waitFor(async () => (await httpRequest(`${relay1.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, {
    timeoutMs: 5000,
    what: 'initialized',
  });
  await relay1.kill();
  await up.close();
  const relay2 = await s.relay({ dir, cacheDir: null, upstreamUrl: up.url, environments: prodEnv() });
  const r = await httpRequest(`${relay2.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.equal(r.status, 503);
  assert.equal((await statusOf(relay2)).environments.prod.dataSource, 'none');
});
