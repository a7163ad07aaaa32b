// dataFile environments: served from a JSON file; on change, subscribers get the differences.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { httpRequest, sleep, waitFor } from '../support/http.mjs';
import { assertSseHeaders } from '../support/assertions.mjs';

const value = (f) => f.variations[f.fallthrough.variation];

function writeInPlace(file, data) {
  fs.writeFileSync(file, JSON.stringify(data, null, 2));
}

function writeAtomic(file, data) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(data, null, 2));
  fs.renameSync(tmp, file);
}

/** Consumes events until every path in `want` has been seen; returns {path: event}. */
async function collectByPath(c, want, timeoutMs) {
  const got = {};
  const deadline = Date.now() + timeoutMs;
  while (want.some((p) => !got[p])) {
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(`missing events for ${want.filter((p) => !got[p]).join(', ')}; got: ${JSON.stringify(Object.keys(got))}; all events: ${c.events.map((e) => `${e.event} ${e.data.slice(0, 100)}`).join(' | ')}`);
    }
    const ev = await c.nextEvent(left);
    const body = ev.json();
    assert.ok(!got[body.path], `duplicate event for ${body.path}: ${ev.data.slice(0, 200)}`);
    assert.ok(want.includes(body.path), `unexpected ${ev.event} for ${body.path} (unchanged items must not be sent): ${ev.data.slice(0, 200)}`);
    got[body.path] = { event: ev.event, body };
  }
  return got;
}

relayTest('dataFile environment: served from the file, changes stream as patch/delete differences', async (t, s) => {
  const dir = s.tmpDir();
  const file = path.join(dir, 'staging-flags.json');
  const a1 = makeFlag('a', 1, 'x');
  const b1 = makeFlag('b', 1, true);
  const c1 = makeFlag('c', 1, 10);
  const s1 = makeSegment('s1', 1, ['u']);
  writeInPlace(file, { flags: byKey(a1, b1, c1), segments: byKey(s1) });

  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('prod-flag', 1, 1)) });
  const relay = await s.relay({
    dir,
    upstreamUrl: up.url,
    environments: { ...prodEnv(), staging: { sdkKey: KEYS.staging, dataFile: file, dataFilePollInterval: '100ms' } },
  });

  const sub = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.staging) });
  assertSseHeaders(sub);
  const put = await sub.nextEvent(5000);
  assert.equal(put.event, 'put');
  const putData = put.json().data;
  assert.deepEqual(Object.keys(putData.flags).sort(), ['a', 'b', 'c']);
  assert.deepEqual(Object.keys(putData.segments).sort(), ['s1']);
  assert.equal(value(putData.flags.a), 'x');
  const had = { a: putData.flags.a.version, b: putData.flags.b.version, s1: putData.segments.s1.version };

  const st = (await httpRequest(`${relay.url}/status`)).json();
  assert.equal(st.environments?.staging?.dataSource, 'file', `staging dataSource: ${JSON.stringify(st.environments?.staging)}`);
  assert.equal(up.streamRequests(KEYS.staging).length, 0, 'a dataFile environment must not open an upstream stream');

  // Change 1 (in-place rewrite): a changes value without a version bump, b removed, c unchanged,
  // d added, s1 changes.
  await sleep(250);
  const a1b = makeFlag('a', 1, 'y');
  const d1 = makeFlag('d', 1, 'new');
  const s1b = makeSegment('s1', 1, ['u', 'v']);
  writeInPlace(file, { flags: byKey(a1b, c1, d1), segments: byKey(s1b) });
  const got = await collectByPath(sub, ['/flags/a', '/flags/b', '/flags/d', '/segments/s1'], 5000);
  assert.equal(got['/flags/a'].event, 'patch');
  assert.equal(value(got['/flags/a'].body.data), 'y');
  assert.ok(got['/flags/a'].body.data.version > had.a, `patched a must have version > ${had.a}, got ${got['/flags/a'].body.data.version}`);
  assert.equal(got['/flags/b'].event, 'delete');
  assert.ok(got['/flags/b'].body.version > had.b, `delete of b must have version > ${had.b}, got ${got['/flags/b'].body.version}`);
  assert.equal(got['/flags/d'].event, 'patch');
  assert.equal(value(got['/flags/d'].body.data), 'new');
  assert.equal(got['/segments/s1'].event, 'patch');
  assert.deepEqual(got['/segments/s1'].body.data.included, ['u', 'v']);
  assert.ok(got['/segments/s1'].body.data.version > had.s1, 'patched s1 version must grow');
  await sub.expectNoEvent(500);

  // Change 2 (atomic replace): a changes again, still "version 1" in the file.
  const aVersionAfter1 = got['/flags/a'].body.data.version;
  await sleep(250);
  writeAtomic(file, { flags: byKey(makeFlag('a', 1, 'z'), c1, d1), segments: byKey(s1b) });
  const got2 = await collectByPath(sub, ['/flags/a'], 5000);
  assert.equal(value(got2['/flags/a'].body.data), 'z');
  assert.ok(got2['/flags/a'].body.data.version > aVersionAfter1, `second patch of a must have version > ${aVersionAfter1}`);
  await sub.expectNoEvent(500);

  // Polling and a new subscriber see the file's current content.
  const r = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.staging) });
  assert.equal(r.status, 200);
  const all = r.json();
  assert.deepEqual(Object.keys(all.flags).sort(), ['a', 'c', 'd']);
  assert.equal(value(all.flags.a), 'z');
  const sub2 = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.staging) });
  const put2 = (await sub2.nextEvent(5000)).json().data;
  assert.deepEqual(Object.keys(put2.flags).sort(), ['a', 'c', 'd']);
  assert.deepEqual(put2.segments.s1.included, ['u', 'v']);

  // The file environment is independent of prod: prod still serves its upstream data.
  const pr = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.deepEqual(Object.keys(pr.json().flags), ['prod-flag']);
});

relayTest('dataFile environment keeps serving the last good data when the file becomes invalid', async (t, s) => {
  const dir = s.tmpDir();
  const file = path.join(dir, 'f.json');
  writeInPlace(file, { flags: byKey(makeFlag('keep', 1, 'kept')), segments: {} });
  const up = await s.upstream({ sdkKey: KEYS.prod });
  const relay = await s.relay({
    dir,
    upstreamUrl: up.url,
    environments: { staging: { sdkKey: KEYS.staging, dataFile: file, dataFilePollInterval: '100ms' } },
  });
  const sub = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.staging) });
  assert.equal((await sub.nextEvent(5000)).event, 'put');
  await sleep(200);
  fs.writeFileSync(file, '{"flags": {"keep": ');
  await sub.expectNoEvent(800);
  const r = await httpRequest(`${relay.url}/sdk/latest-flags/keep`, { headers: auth(KEYS.staging) });
  assert.equal(r.status, 200, 'last good data must stay served');
  // A valid file again is picked up.
  writeInPlace(file, { flags: byKey(makeFlag('keep', 1, 'kept'), makeFlag('added', 1, 'ok')), segments: {} });
  const ev = await sub.waitForEvent((e) => e.json().path === '/flags/added', 5000, 'patch for the added flag');
  assert.equal(ev.event, 'patch');
  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200, { timeoutMs: 2000, what: '/readyz 200' });
});

relayTest('dataFile environment with a cache is VALID again after a restart, and an edit made while it was down streams as a put', async (t, s) => {
  const dir = s.tmpDir();
  const file = path.join(dir, 'f.json');
  writeInPlace(file, { flags: byKey(makeFlag('a', 1, 'one')), segments: {} });
  const up = await s.upstream({ sdkKey: KEYS.prod });
  const env = { staging: { sdkKey: KEYS.staging, dataFile: file, dataFilePollInterval: '100ms' } };
  const statusOf = async (relay) => (await httpRequest(`${relay.url}/status`)).json().environments.staging;
  const first = await s.relay({ dir, upstreamUrl: up.url, environments: env });
  await waitFor(async () => (await statusOf(first)).connectionStatus.state === 'VALID', { timeoutMs: 5000, what: 'first run VALID' });
  await first.terminate();

  writeInPlace(file, { flags: byKey(makeFlag('a', 1, 'two')), segments: {} });  // edited while down
  const second = await s.relay({ dir, port: first.port, upstreamUrl: up.url, environments: env });
  const sub = await s.sse(`${second.url}/all`, { headers: auth(KEYS.staging) });
  const ev = await sub.nextEvent(5000);
  assert.equal(ev.event, 'put', 'a stream starts with a put');
  assert.equal(value(ev.json().data.flags.a), 'two');
  const st = await waitFor(async () => { const x = await statusOf(second); return x.connectionStatus.state === 'VALID' ? x : null; },
    { timeoutMs: 5000, what: 'second run VALID' });
  assert.equal(st.dataSource, 'file');
  assert.equal(st.cache.load, 'loaded');
});
