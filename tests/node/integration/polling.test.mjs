// Polling endpoints: /sdk/latest-all (ETag, 304, gzip), item endpoints, PHP endpoints, 401.
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { assertFlagsMap, assertSegmentsMap, flagEssentials, segmentEssentials } from '../support/assertions.mjs';

const fA = makeFlag('alpha', 2, 'a');
const fB = makeFlag('beta', 7, false);
const sX = makeSegment('seg-x', 4, ['u1', 'u2']);

async function setup(s) {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(fA, fB), segments: byKey(sX) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  await waitFor(async () => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) })).status === 200, {
    timeoutMs: 5000,
    what: '/sdk/latest-all 200 after the upstream put',
  });
  return { up, relay };
}

const get = (relay, p, headers = {}) => httpRequest(`${relay.url}${p}`, { headers: { ...auth(KEYS.prod), ...headers } });

relayTest('/sdk/latest-all: JSON with ETag, 304 on If-None-Match, new ETag after a patch', async (t, s) => {
  const { up, relay } = await setup(s);
  const r1 = await get(relay, '/sdk/latest-all');
  assert.equal(r1.status, 200);
  assert.match(r1.headers['content-type'] ?? '', /^application\/json/, 'Content-Type');
  const etag = r1.headers.etag;
  assert.ok(etag, `ETag header missing; headers: ${JSON.stringify(r1.headers)}`);
  const body = r1.json();
  assertFlagsMap(body.flags, byKey(fA, fB));
  assertSegmentsMap(body.segments, byKey(sX));

  const r304 = await get(relay, '/sdk/latest-all', { 'If-None-Match': etag });
  assert.equal(r304.status, 304, `If-None-Match with the current ETag: status ${r304.status}`);
  assert.equal(r304.body.length, 0, '304 must have no body');

  const other = await get(relay, '/sdk/latest-all', { 'If-None-Match': '"something-else"' });
  assert.equal(other.status, 200, 'a non-matching If-None-Match must get the full body');

  const fA3 = makeFlag('alpha', 3, 'a3');
  up.pushPatch(fA3);
  const r2 = await waitFor(async () => {
    const r = await get(relay, '/sdk/latest-all', { 'If-None-Match': etag });
    return r.status === 200 ? r : null;
  }, { timeoutMs: 3000, what: 'a 200 (not 304) with the old ETag after a patch' });
  assert.ok(r2.headers.etag, 'ETag after patch');
  assert.notEqual(r2.headers.etag, etag, 'ETag must change after a patch');
  assertFlagsMap(r2.json().flags, byKey(fA3, fB), 'flags after patch');
  const r304b = await get(relay, '/sdk/latest-all', { 'If-None-Match': r2.headers.etag });
  assert.equal(r304b.status, 304, 'the new ETag must validate');
});

relayTest('/sdk/latest-all with Accept-Encoding: gzip returns a gzip body with the same JSON', async (t, s) => {
  const { relay } = await setup(s);
  const plain = await get(relay, '/sdk/latest-all');
  const gz = await get(relay, '/sdk/latest-all', { 'Accept-Encoding': 'gzip' });
  assert.equal(gz.status, 200);
  assert.equal(gz.headers['content-encoding'], 'gzip', `Content-Encoding: ${gz.headers['content-encoding']}`);
  let unzipped;
  try {
    unzipped = zlib.gunzipSync(gz.body);
  } catch (err) {
    assert.fail(`gzip body does not gunzip: ${err.message}`);
  }
  assert.deepEqual(JSON.parse(unzipped.toString('utf8')), plain.json(), 'gunzipped body equals the identity body');
  if (!/accept-encoding/i.test(gz.headers.vary ?? '')) {
    s.note(`advisory (not in the contract): gzip response has no "Vary: Accept-Encoding" (Vary: ${gz.headers.vary})`);
  }
  if (gz.headers.etag) {
    const r304 = await get(relay, '/sdk/latest-all', { 'Accept-Encoding': 'gzip', 'If-None-Match': gz.headers.etag });
    assert.equal(r304.status, 304, 'gzip ETag must validate');
  }
  const identity = await get(relay, '/sdk/latest-all', { 'Accept-Encoding': 'identity' });
  assert.equal(identity.headers['content-encoding'] ?? 'identity', 'identity', 'no gzip unless asked');
});

relayTest('item endpoints: latest-flags, latest-segments, PHP /sdk/flags and /sdk/segments, 404s', async (t, s) => {
  const { up, relay } = await setup(s);

  let r = await get(relay, '/sdk/latest-flags');
  assert.equal(r.status, 200, '/sdk/latest-flags');
  assertFlagsMap(r.json(), byKey(fA, fB), '/sdk/latest-flags');
  r = await get(relay, '/sdk/latest-flags/alpha');
  assert.equal(r.status, 200, '/sdk/latest-flags/alpha');
  assert.deepEqual(flagEssentials(r.json()), flagEssentials(fA));
  r = await get(relay, '/sdk/latest-segments');
  assert.equal(r.status, 200, '/sdk/latest-segments');
  assertSegmentsMap(r.json(), byKey(sX), '/sdk/latest-segments');
  r = await get(relay, '/sdk/latest-segments/seg-x');
  assert.equal(r.status, 200, '/sdk/latest-segments/seg-x');
  assert.deepEqual(segmentEssentials(r.json()), segmentEssentials(sX));

  r = await get(relay, '/sdk/flags');
  assert.equal(r.status, 200, '/sdk/flags');
  assertFlagsMap(r.json(), byKey(fA, fB), '/sdk/flags');
  r = await get(relay, '/sdk/flags/beta');
  assert.equal(r.status, 200, '/sdk/flags/beta');
  assert.deepEqual(flagEssentials(r.json()), flagEssentials(fB));
  r = await get(relay, '/sdk/segments/seg-x');
  assert.equal(r.status, 200, '/sdk/segments/seg-x');
  assert.deepEqual(segmentEssentials(r.json()), segmentEssentials(sX));

  for (const p of ['/sdk/latest-flags/nope', '/sdk/latest-segments/nope', '/sdk/flags/nope', '/sdk/segments/nope']) {
    r = await get(relay, p);
    assert.equal(r.status, 404, `${p}: unknown item must be 404, got ${r.status}`);
  }

  // Item ETag + 304 on a single flag (§1.4).
  r = await get(relay, '/sdk/flags/beta');
  if (r.headers.etag) {
    const r304 = await get(relay, '/sdk/flags/beta', { 'If-None-Match': r.headers.etag });
    assert.equal(r304.status, 304, '/sdk/flags/beta with its ETag');
  }

  // Deleted items are 404 and vanish from the maps.
  up.pushDelete('flags', 'alpha', 3);
  up.pushDelete('segments', 'seg-x', 5);
  await waitFor(async () => (await get(relay, '/sdk/latest-flags/alpha')).status === 404, {
    timeoutMs: 3000,
    what: '/sdk/latest-flags/alpha 404 after delete',
  });
  for (const p of ['/sdk/flags/alpha', '/sdk/latest-segments/seg-x', '/sdk/segments/seg-x']) {
    r = await waitFor(async () => {
      const x = await get(relay, p);
      return x.status === 404 ? x : null;
    }, { timeoutMs: 3000, what: `${p} 404 after delete` });
  }
  r = await get(relay, '/sdk/latest-all');
  assertFlagsMap(r.json().flags, byKey(fB), 'latest-all flags after delete');
  assertSegmentsMap(r.json().segments, {}, 'latest-all segments after delete');
  r = await get(relay, '/sdk/flags');
  assertFlagsMap(r.json(), byKey(fB), '/sdk/flags after delete');
});

relayTest('polling with a wrong, missing or "Bearer" credential is rejected with 401', async (t, s) => {
  const { relay } = await setup(s);
  const paths = ['/sdk/latest-all', '/sdk/latest-flags', '/sdk/latest-flags/alpha', '/sdk/latest-segments/seg-x', '/sdk/flags', '/sdk/flags/alpha', '/sdk/segments/seg-x'];
  for (const p of paths) {
    for (const headers of [auth(KEYS.wrong), {}, auth(`Bearer ${KEYS.prod}`)]) {
      const r = await httpRequest(`${relay.url}${p}`, { headers });
      assert.equal(r.status, 401, `${p} with ${JSON.stringify(headers)}: status ${r.status}`);
      assert.equal(r.headers.etag, undefined, `${p}: a 401 must not carry an ETag`);
    }
  }
  const ok = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(`api_key ${KEYS.prod}`) });
  assert.equal(ok.status, 200, '"api_key " prefix must be accepted');
});
