// Server-side SSE streams /all and /flags, upstream stream handling, version rules.
import assert from 'node:assert/strict';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { assertAllPut, assertSseHeaders, flagEssentials, segmentEssentials, assertFlagsMap } from '../support/assertions.mjs';

const f1 = makeFlag('flag-one', 1, 'one');
const f2 = makeFlag('flag-two', 3, true);
const seg1 = makeSegment('seg-one', 2, ['user-a']);

async function setup(s, extra = {}) {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f1, f2), segments: byKey(seg1), ...extra.upstream });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), ...extra.relay });
  return { up, relay };
}

relayTest('relay opens exactly one upstream GET /all per environment, with the raw SDK key', async (t, s) => {
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(f1),
    environments: { [KEYS.staging]: { flags: byKey(f2) } },
  });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: { ...prodEnv(), staging: { sdkKey: KEYS.staging } },
  });
  // Several downstream subscribers on both environments must not open more upstream streams.
  const clients = [];
  for (const key of [KEYS.prod, KEYS.prod, KEYS.prod, KEYS.staging, KEYS.staging]) {
    const c = await s.sse(`${relay.url}/all`, { headers: auth(key) });
    assertSseHeaders(c);
    clients.push(c);
  }
  for (const c of clients) assert.equal((await c.nextEvent(5000)).event, 'put');
  await sleep(500);
  assert.equal(up.streamRequests(KEYS.prod).length, 1, 'upstream GET /all requests for prod');
  assert.equal(up.streamRequests(KEYS.staging).length, 1, 'upstream GET /all requests for staging');
  assert.equal(up.rejected, 0, 'no upstream request should have been rejected (wrong Authorization)');
  for (const r of up.streamRequests()) {
    assert.ok([KEYS.prod, KEYS.staging].includes(r.headers.authorization), `Authorization header ${r.headers.authorization}`);
    assert.equal(r.url, '/all', 'request target');
  }
  // Each environment got its own data.
  const prodPut = (await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) })).nextEvent(5000);
  assertAllPut(await prodPut, byKey(f1), {});
  const stagingPut = (await s.sse(`${relay.url}/all`, { headers: auth(KEYS.staging) })).nextEvent(5000);
  assertAllPut(await stagingPut, byKey(f2), {});
});

relayTest('/all streams put, then patch and delete for flags and segments', async (t, s) => {
  const { up, relay } = await setup(s);
  const c = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertSseHeaders(c);
  assertAllPut(await c.nextEvent(5000), byKey(f1, f2), byKey(seg1));

  const f1v2 = makeFlag('flag-one', 2, 'two');
  up.pushPatch(f1v2);
  let ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'patch', `expected patch, got ${ev.event} ${ev.data}`);
  let body = ev.json();
  assert.equal(body.path, '/flags/flag-one');
  assert.deepEqual(flagEssentials(body.data), flagEssentials(f1v2));

  const f3 = makeFlag('flag-three', 1, 42);
  up.pushPatch(f3);
  ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'patch');
  body = ev.json();
  assert.equal(body.path, '/flags/flag-three');
  assert.deepEqual(flagEssentials(body.data), flagEssentials(f3));

  const seg1v3 = makeSegment('seg-one', 3, ['user-a', 'user-b']);
  up.pushPatchSegment(seg1v3);
  ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'patch');
  body = ev.json();
  assert.equal(body.path, '/segments/seg-one');
  assert.deepEqual(segmentEssentials(body.data), segmentEssentials(seg1v3));

  up.pushDelete('flags', 'flag-two', 4);
  ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'delete', `expected delete, got ${ev.event} ${ev.data}`);
  assert.deepEqual(ev.json(), { path: '/flags/flag-two', version: 4 });

  up.pushDelete('segments', 'seg-one', 4);
  ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'delete');
  assert.deepEqual(ev.json(), { path: '/segments/seg-one', version: 4 });

  // A new subscriber's put reflects every change, without the deleted items (no nulls).
  const c2 = await s.sse(`${relay.url}/all`, { headers: auth(`api_key ${KEYS.prod}`) });
  assertSseHeaders(c2, '/all with "api_key " prefix');
  assertAllPut(await c2.nextEvent(5000), byKey(f1v2, f3), {}, 'put after changes');
});

relayTest('/flags (legacy) streams the bare flags map and /<key> paths, no segment events', async (t, s) => {
  const { up, relay } = await setup(s);
  const c = await s.sse(`${relay.url}/flags`, { headers: auth(KEYS.prod) });
  assertSseHeaders(c, '/flags');
  const put = await c.nextEvent(5000);
  assert.equal(put.event, 'put');
  const putBody = put.json();
  assert.equal(putBody.path, undefined, `/flags put data must be the bare flags map, got keys ${Object.keys(putBody)}`);
  assertFlagsMap(putBody, byKey(f1, f2), '/flags put');

  up.pushPatchSegment(makeSegment('seg-one', 5, ['x']));
  const f1v2 = makeFlag('flag-one', 2, 'two');
  up.pushPatch(f1v2);
  let ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'patch');
  let body = ev.json();
  assert.equal(body.path, '/flag-one', `/flags patch path (a segment patch must not be sent on /flags): ${ev.data.slice(0, 200)}`);
  assert.deepEqual(flagEssentials(body.data), flagEssentials(f1v2));

  up.pushDelete('flags', 'flag-two', 9);
  ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'delete');
  assert.deepEqual(ev.json(), { path: '/flag-two', version: 9 });
});

relayTest('stale or equal-version patches are not forwarded; a delete tombstone blocks older patches', async (t, s) => {
  const { up, relay } = await setup(s);
  const c = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await c.nextEvent(5000), byKey(f1, f2), byKey(seg1));

  up.pushPatch(makeFlag('flag-one', 5, 'five'));
  let ev = await c.nextEvent(5000);
  assert.equal(ev.json().data.version, 5);

  up.pushPatchOnly(makeFlag('flag-one', 3, 'stale-three')); // older: must be dropped
  up.pushPatchOnly(makeFlag('flag-one', 5, 'same-five')); // equal: must be dropped
  up.pushPatchSegment(makeSegment('seg-one', 1, ['stale'])); // older segment: dropped
  up.pushPatch(makeFlag('flag-one', 6, 'six')); // marker
  ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'patch');
  assert.deepEqual(
    { path: ev.json().path, version: ev.json().data.version, value: ev.json().data.variations[0] },
    { path: '/flags/flag-one', version: 6, value: 'six' },
    `the next event after stale patches must be the v6 marker, got ${ev.data.slice(0, 200)}`,
  );

  // Delete at v7 leaves a tombstone: an older patch (v6 -> v7 boundary) must not resurrect it.
  up.pushDelete('flags', 'flag-one', 7);
  ev = await c.nextEvent(5000);
  assert.equal(ev.event, 'delete');
  assert.deepEqual(ev.json(), { path: '/flags/flag-one', version: 7 });
  up.pushPatchOnly(makeFlag('flag-one', 6, 'zombie'));
  up.pushPatchOnly(makeFlag('flag-one', 7, 'zombie-equal'));
  up.pushDelete('flags', 'flag-two', 2); // older than stored v3: dropped
  const marker = makeFlag('marker', 1, 'm');
  up.pushPatch(marker);
  ev = await c.nextEvent(5000);
  assert.equal(ev.json().path, '/flags/marker', `expected only the marker patch, got ${ev.event} ${ev.data.slice(0, 200)}`);

  const r = await httpRequest(`${relay.url}/sdk/latest-flags/flag-one`, { headers: auth(KEYS.prod) });
  assert.equal(r.status, 404, 'deleted flag must stay deleted (polling)');
  const r2 = await httpRequest(`${relay.url}/sdk/latest-flags/flag-two`, { headers: auth(KEYS.prod) });
  assert.equal(r2.status, 200, 'a stale delete must not remove flag-two');
  const c2 = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await c2.nextEvent(5000), byKey(f2, marker), byKey(seg1), 'put after stale events');
});

relayTest('/all sends heartbeat comment lines at streams.heartbeatInterval (1s)', async (t, s) => {
  const { relay } = await setup(s);
  const c = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await c.nextEvent(5000);
  const start = Date.now();
  await c.waitForComments(2, 4000);
  s.note(`2 heartbeats after ${Date.now() - start} ms`);
  assert.ok(!c.isClosed, 'stream must stay open');
});

relayTest('relay reconnects when the upstream drops the stream and forwards the new put', async (t, s) => {
  const { up, relay } = await setup(s);
  const c = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await c.nextEvent(5000), byKey(f1, f2), byKey(seg1));
  await up.close();
  const f4 = makeFlag('flag-four', 1, 'four');
  up.setData({ flags: byKey(f4), segments: {} });
  await sleep(300);
  await up.restart();
  await up.waitForConnections(2, 5000);
  const ev = await c.waitForEvent((e) => e.event === 'put', 5000, 'put after upstream reconnect');
  assertAllPut(ev, byKey(f4), {}, 'put after reconnect');
  assert.ok(!c.isClosed, 'downstream stream must survive an upstream reconnect');
  await waitFor(async () => {
    const r = await httpRequest(`${relay.url}/sdk/latest-flags/flag-one`, { headers: auth(KEYS.prod) });
    return r.status === 404;
  }, { timeoutMs: 3000, what: 'flag-one gone after the full put replaced the data' });
});

relayTest('SSE with a wrong, missing or "Bearer" credential is rejected with 401', async (t, s) => {
  const { relay } = await setup(s);
  for (const route of ['/all', '/flags']) {
    for (const headers of [auth(KEYS.wrong), {}, auth(`Bearer ${KEYS.prod}`), auth(KEYS.prodMobile)]) {
      const c = await s.sse(`${relay.url}${route}`, { headers });
      assert.equal(c.status, 401, `${route} with ${JSON.stringify(headers)}: status ${c.status}`);
      c.close();
    }
  }
});
