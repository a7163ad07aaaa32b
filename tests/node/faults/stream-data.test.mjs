// Faults inside an established upstream stream: truncated events, a stalled stream, malformed
// events, stale patches, huge and oversized puts, and a slow drip.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, makeSegment, byKey } from '../support/flags.mjs';
import { sleep } from '../support/http.mjs';
import { sdkClient, nextEmit } from '../support/sdk.mjs';
import { assertAllPut } from '../support/assertions.mjs';
import { sampleSum } from '../support/prom.mjs';
import {
  FAST, FAST_MAX_DELAY_MS, SLACK_MS, user, envStatus, waitEnv, stateIs, upstreamMetrics,
  assertStateGauge, assertServes, latestAll, report, waitVariation, frame,
  faultTest,
} from '../support/faults.mjs';


/** Fake upstream + relay + SSE client + streaming SDK, all initialized and VALID. */
async function validSetup(s, { flags, segments = {}, upOpts = {}, relayOpts = {}, upstream = {} }) {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags, segments, ...upOpts });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), ...relayOpts, upstream: { ...FAST, ...upstream } });
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await sse.nextEvent(5000), flags, segments, 'initial put');
  const client = sdkClient(s, relay, KEYS.prod, { stream: true });
  await client.waitForInitialization({ timeout: 10 });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  return { up, relay, sse, client };
}

const mentionsVersion = (ev, key, version) => {
  try {
    const b = ev.json();
    if (ev.event === 'patch') return b.path === `/flags/${key}` && b.data?.version === version;
    if (ev.event === 'put') return b.data?.flags?.[key]?.version === version;
  } catch {
    /* not JSON */
  }
  return false;
};

for (const mode of ['clean end (terminating chunk)', 'abrupt close (socket destroyed)']) {
  faultTest(`stream closes mid-event, ${mode}: the partial event is not applied; new connection`, async (t, s) => {
    const x1 = makeFlag('x', 1, 'one');
    const { up, relay, sse, client } = await validSetup(s, { flags: byKey(x1), upstream: { readTimeout: '5s' } });
    const m0 = await upstreamMetrics(relay);
    const patches0 = sampleSum(m0.parsed, 'flagrelay_updates_total', { env: 'prod', kind: 'patch' }) ?? 0;
    const x2 = makeFlag('x', 2, 'partial');
    // A complete data line but no blank line: the event is never dispatched (SSE: discarded at EOF).
    const partial = mode.startsWith('clean')
      ? `event: patch\ndata: ${JSON.stringify({ path: '/flags/x', data: x2 })}\n`
      : `event: patch\ndata: ${JSON.stringify({ path: '/flags/x', data: x2 }).slice(0, 60)}`;
    up.pushRaw(partial);
    await sleep(150);
    const cutAt = Date.now();
    if (mode.startsWith('clean')) up.endStreams();
    else up.dropStreams();
    await up.waitForConnections(2, FAST_MAX_DELAY_MS + SLACK_MS + 1000);
    report(t, s, `mid-event close (${mode.split(' ')[0]}): new stream after`, Date.now() - cutAt);
    await waitEnv(relay, stateIs('VALID'), { what: 'VALID after the reconnect' });
    const e = await envStatus(relay);
    assert.equal(e.connectionStatus.lastError?.kind, 'NETWORK_ERROR', `lastError after the stream ended: ${JSON.stringify(e.connectionStatus.lastError)}`);
    await assertServes(relay, KEYS.prod, byKey(x1), {}, 'after the truncated patch');
    assert.equal(await client.variation('x', user('u1'), 'default'), 'one', 'SDK must not see the partial patch');
    const leaked = sse.events.find((ev) => mentionsVersion(ev, 'x', 2));
    assert.equal(leaked, undefined, `the partial patch reached a downstream client: ${leaked?.data.slice(0, 200)}`);
    const m = await upstreamMetrics(relay);
    assert.equal(sampleSum(m.parsed, 'flagrelay_updates_total', { env: 'prod', kind: 'patch' }) ?? 0, patches0, 'no patch counted');
    assert.ok(m.reconnects.network_error >= 1, `reconnects_total{kind="network_error"}: ${JSON.stringify(m.reconnects)}`);
    // The new stream works.
    const upd = nextEmit(client, 'update:x', 5000);
    up.pushPatch(makeFlag('x', 3, 'three'));
    await upd;
    assert.equal(await client.variation('x', user('u1'), 'default'), 'three');
  });
}

faultTest('stall without heartbeats: reconnect after readTimeout (NETWORK_ERROR), data kept', async (t, s) => {
  const f = makeFlag('f', 1, 'kept');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: { ...FAST, readTimeout: '1s' } });
  await up.waitForConnections(1, 5000);
  const first = up.streamRequests(KEYS.prod)[0].time; // the put is written at once: last byte ~ now
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  await sleep(Math.max(0, first + 650 - Date.now()));
  const mid = await upstreamMetrics(relay);
  const e = await envStatus(relay);
  const checkedAt = Date.now();
  assert.equal(up.connections, 1, 'setup took too long: reconnected before the mid-stall check');
  assert.ok(mid.lastActivityAge >= 0.4, `flagrelay_upstream_last_activity_age_seconds during a silent stream: ${mid.lastActivityAge}`);
  assert.equal(typeof e.connectionStatus.lastActivityAt, 'number', `connectionStatus.lastActivityAt: ${JSON.stringify(e.connectionStatus)}`);
  assert.ok(checkedAt - e.connectionStatus.lastActivityAt >= 400, `lastActivityAt ${checkedAt - e.connectionStatus.lastActivityAt} ms old: should be the put's time`);
  await up.waitForConnections(2, 1000 + FAST_MAX_DELAY_MS + SLACK_MS + 500);
  const second = up.streamRequests(KEYS.prod)[1].time;
  const gap = report(t, s, 'stall (readTimeout 1s): second connection after first', second - first);
  assert.ok(gap >= 900, `reconnected after ${gap} ms: before readTimeout (1 s) expired`);
  assert.ok(gap <= 1000 + FAST_MAX_DELAY_MS + SLACK_MS, `reconnected ${gap} ms after the last byte (bound readTimeout 1 s + ${FAST_MAX_DELAY_MS} + ${SLACK_MS} ms)`);
  const after = await waitEnv(relay, (x) => x.connectionStatus?.lastError?.kind === 'NETWORK_ERROR', { what: 'lastError NETWORK_ERROR' });
  assert.ok(after.connectionStatus.lastError.time >= first + 900, 'the error is the read timeout');
  const m = await upstreamMetrics(relay);
  assert.ok(m.reconnects.network_error >= 1, `reconnects_total{kind="network_error"}: ${JSON.stringify(m.reconnects)}`);
  const client = sdkClient(s, relay, KEYS.prod, { stream: true });
  await client.waitForInitialization({ timeout: 5 });
  assert.equal(await client.variation('f', user('u1'), 'default'), 'kept');
  await assertServes(relay, KEYS.prod, byKey(f), {});
});

faultTest('heartbeats keep a quiet stream alive: no reconnect while ":" lines arrive within readTimeout', async (t, s) => {
  const f = makeFlag('f', 1, 'v');
  const { up, relay } = await validSetup(s, { flags: byKey(f), upOpts: { heartbeatMs: 250 }, upstream: { readTimeout: '1s' } });
  await sleep(2600);
  assert.equal(up.connections, 1, `${up.connections} upstream connections: heartbeats must reset the read timeout`);
  const e = await envStatus(relay);
  assert.equal(e.connectionStatus.state, 'VALID');
  assert.ok(Date.now() - e.connectionStatus.lastActivityAt < 1000, `lastActivityAt must follow heartbeats: ${Date.now() - e.connectionStatus.lastActivityAt} ms old`);
  const m = await upstreamMetrics(relay);
  assert.ok(m.lastActivityAge < 1, `flagrelay_upstream_last_activity_age_seconds with heartbeats every 250 ms: ${m.lastActivityAge}`);
});

const garbage = () => {
  const b = crypto.randomBytes(512);
  for (let i = 0; i < b.length; i++) if (b[i] === 10 || b[i] === 13) b[i] = 0;
  return b;
};

const MALFORMED = [
  ['invalid JSON in a patch', () => `event: patch\ndata: {"path":"/flags/x","data":{"key":"x","version":9,\n\n`],
  ['garbage bytes as a put', () => Buffer.concat([Buffer.from('event: put\ndata: '), garbage(), Buffer.from('\n\n')])],
  ['a put without data', () => frame('put', { path: '/' })],
  ['a patch whose data is not an object', () => frame('patch', { path: '/flags/x', data: 'not-a-flag' })],
];

for (const [name, payload] of MALFORMED) {
  faultTest(`malformed event (${name}): INTERRUPTED + INVALID_DATA, stream restarted, last good data served`, async (t, s) => {
    const x = makeFlag('x', 1, 'good');
    const { up, relay, sse, client } = await validSetup(s, { flags: byKey(x), upOpts: { heartbeatMs: 250 } });
    const before = await latestAll(relay, KEYS.prod);
    // The next connection gets no put: the relay stays INTERRUPTED and observable.
    up.sendPut = false;
    const at = Date.now();
    up.pushRaw(payload());
    await up.waitForConnections(2, FAST_MAX_DELAY_MS + SLACK_MS + 1000);
    report(t, s, `malformed (${name}): new stream after`, Date.now() - at);
    const e = await waitEnv(relay, (z) => z.connectionStatus?.lastError?.kind === 'INVALID_DATA', { what: 'lastError.kind INVALID_DATA' });
    assert.equal(e.connectionStatus.state, 'INTERRUPTED', 'state after a malformed event');
    assert.ok(e.connectionStatus.lastError.time >= at - 50, 'lastError.time is the malformed event');
    await sleep(200);
    assert.equal(up.openStreams, 1, `old stream closed, one new stream open (open: ${up.openStreams})`);
    const after = await latestAll(relay, KEYS.prod);
    assert.equal(after.status, 200);
    assert.deepEqual(after.body, before.body, 'polling body unchanged (last good data)');
    assert.equal(await client.variation('x', user('u1'), 'default'), 'good', 'SDK keeps the last good value');
    assert.equal(sse.events.length, 1, `no downstream event for a malformed upstream event: ${sse.events.slice(1).map((v) => `${v.event} ${v.data.slice(0, 80)}`).join(' | ')}`);
    const m = await upstreamMetrics(relay);
    assertStateGauge(m, 'interrupted');
    assert.ok(m.reconnects.invalid_data >= 1, `reconnects_total{kind="invalid_data"}: ${JSON.stringify(m.reconnects)}`);
    assert.ok(relay.running(), 'relay still running');
    // A put on the new stream recovers.
    const x2 = makeFlag('x', 2, 'recovered');
    up.pushPut({ flags: byKey(x2) });
    assertAllPut(await sse.nextEvent(5000), byKey(x2), {}, 'put after recovery');
    await waitEnv(relay, stateIs('VALID'), { what: 'VALID after the put' });
    await waitVariation(client, 'x', 'recovered');
  });
}

faultTest('older and equal-version patches are neither applied nor forwarded', async (t, s) => {
  const x5 = makeFlag('x', 5, 'five');
  const seg3 = makeSegment('s', 3, ['a']);
  const { up, relay, sse, client } = await validSetup(s, { flags: byKey(x5), segments: byKey(seg3), upOpts: { heartbeatMs: 250 } });
  const stale0 = sampleSum((await upstreamMetrics(relay)).parsed, 'flagrelay_updates_total', { env: 'prod', kind: 'patch', result: 'stale' }) ?? 0;
  up.pushPatchOnly(makeFlag('x', 3, 'three-older'));
  up.pushPatchOnly(makeFlag('x', 5, 'five-equal'));
  up.pushPatchOnly(makeSegment('s', 2, ['older']), { kind: 'segments' });
  up.pushPatch(makeFlag('marker', 1, 'm'));
  const ev = await sse.nextEvent(3000);
  assert.equal(ev.json().path, '/flags/marker', `first downstream event after stale patches must be the marker, got ${ev.event} ${ev.data.slice(0, 200)}`);
  await assertServes(relay, KEYS.prod, byKey(x5, makeFlag('marker', 1, 'm')), byKey(seg3), 'after stale patches');
  assert.equal(await client.variation('x', user('u1'), 'default'), 'five');
  const m = await upstreamMetrics(relay);
  const stale = sampleSum(m.parsed, 'flagrelay_updates_total', { env: 'prod', kind: 'patch', result: 'stale' }) ?? 0;
  assert.equal(stale - stale0, 3, 'flagrelay_updates_total{kind="patch",result="stale"} counts the three stale patches');
  assertStateGauge(m, 'valid');
  assert.equal(up.connections, 1, 'a stale patch is not an error: no reconnect');
});

faultTest('delete then an older (or equal) patch: no resurrection; a newer patch does resurrect', async (t, s) => {
  const x5 = makeFlag('x', 5, 'five');
  const keep = makeFlag('keep', 1, 'k');
  const seg = makeSegment('s', 3, ['a']);
  const { up, relay, sse, client } = await validSetup(s, { flags: byKey(x5, keep), segments: byKey(seg), upOpts: { heartbeatMs: 250 } });
  const upd = nextEmit(client, 'update:x', 5000);
  up.pushDelete('flags', 'x', 6);
  up.pushDelete('segments', 's', 4);
  const d1 = await sse.nextEvent(3000);
  assert.equal(d1.event, 'delete');
  assert.deepEqual(d1.json(), { path: '/flags/x', version: 6 });
  assert.equal((await sse.nextEvent(3000)).event, 'delete');
  await upd;
  assert.equal(await client.variation('x', user('u1'), 'default'), 'default', 'deleted flag serves the default');
  up.pushPatchOnly(makeFlag('x', 4, 'zombie-older'));
  up.pushPatchOnly(makeFlag('x', 6, 'zombie-equal'));
  up.pushPatchOnly(makeSegment('s', 2, ['zombie']), { kind: 'segments' });
  up.pushPatch(makeFlag('marker', 1, 'm'));
  const ev = await sse.nextEvent(3000);
  assert.equal(ev.json().path, '/flags/marker', `after the delete the next downstream event must be the marker: ${ev.event} ${ev.data.slice(0, 200)}`);
  await assertServes(relay, KEYS.prod, byKey(keep, makeFlag('marker', 1, 'm')), {}, 'no resurrection');
  assert.equal(await client.variation('x', user('u1'), 'default'), 'default', 'SDK: no resurrection');
  const x7 = makeFlag('x', 7, 'seven');
  up.pushPatch(x7);
  const p = await sse.nextEvent(3000);
  assert.equal(p.json().path, '/flags/x');
  assert.equal(p.json().data.version, 7);
  await waitVariation(client, 'x', 'seven');
});

function bigFlags(n, bytesEach, tag) {
  const pad = 'x'.repeat(bytesEach);
  const out = {};
  for (let i = 0; i < n; i++) out[`big-${i}`] = makeFlag(`big-${i}`, 2, `${tag}-${i}-${pad}`);
  return out;
}

faultTest('a 20 MB put is applied: SSE client, polling and SDK get it', async (t, s) => {
  const small = byKey(makeFlag('big-0', 1, 'small'));
  const { up, relay, sse, client } = await validSetup(s, {
    flags: small,
    upOpts: { heartbeatMs: 500 },
    upstream: { maxEventBytes: '32MiB' },
    relayOpts: { streams: { maxQueueBytes: '64MiB', maxQueueEvents: 64, heartbeatInterval: '1s' } },
  });
  const flags = bigFlags(2000, 10 * 1024, 'huge');
  const start = Date.now();
  up.pushPut({ flags });
  const bytes = Buffer.byteLength(up.frame('put', { path: '/', data: { flags, segments: {} } }));
  const ev = await sse.nextEvent(20000);
  report(t, s, `20 MB put (${(bytes / 1048576).toFixed(1)} MiB): downstream SSE put after`, Date.now() - start);
  assert.equal(ev.event, 'put');
  const body = ev.json();
  assert.equal(Object.keys(body.data.flags).length, 2000);
  assert.equal(body.data.flags['big-1999'].variations[0], flags['big-1999'].variations[0]);
  await waitVariation(client, 'big-1999', flags['big-1999'].variations[0], { timeoutMs: 15000 });
  report(t, s, '20 MB put: SDK has the value after', Date.now() - start);
  const r = await latestAll(relay, KEYS.prod, 15000);
  assert.equal(r.status, 200);
  assert.equal(Object.keys(r.body.flags).length, 2000);
  assertStateGauge(await upstreamMetrics(relay), 'valid');
  assert.equal(up.connections, 1, 'no reconnect');
}, { timeout: 45000 });

faultTest('a put above maxEventBytes (1MiB) is rejected as INVALID_DATA; last good data kept', async (t, s) => {
  const good = byKey(makeFlag('big-0', 1, 'good'));
  const { up, relay, sse, client } = await validSetup(s, { flags: good, upOpts: { heartbeatMs: 250 }, upstream: { maxEventBytes: '1MiB' } });
  up.sendPut = false;
  const huge = frame('put', { path: '/', data: { flags: bigFlags(200, 10 * 1024, 'too-big'), segments: {} } });
  const at = Date.now();
  up.pushRaw(huge); // ~2 MiB; the fake's state is unchanged
  await up.waitForConnections(2, FAST_MAX_DELAY_MS + SLACK_MS + 2000);
  report(t, s, `oversized put (${(huge.length / 1048576).toFixed(1)} MiB): new stream after`, Date.now() - at);
  const e = await waitEnv(relay, (z) => z.connectionStatus?.lastError?.kind === 'INVALID_DATA', { what: 'INVALID_DATA' });
  assert.equal(e.connectionStatus.state, 'INTERRUPTED');
  await assertServes(relay, KEYS.prod, good, {}, 'last good data after an oversized put');
  assert.equal(await client.variation('big-0', user('u1'), 'default'), 'good');
  assert.equal(sse.events.length, 1, 'no downstream put for the oversized event');
  const m = await upstreamMetrics(relay);
  assertStateGauge(m, 'interrupted');
  assert.ok(m.reconnects.invalid_data >= 1, `reconnects_total{kind="invalid_data"}: ${JSON.stringify(m.reconnects)}`);
  up.pushPut({ flags: byKey(makeFlag('big-0', 2, 'small-again')) });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID after a small put' });
  await waitVariation(client, 'big-0', 'small-again');
});

faultTest('slow drip: a put of a few KB written 1 byte/ms is applied intact (multi-byte UTF-8 split across writes)', async (t, s) => {
  const old = byKey(makeFlag('d0', 1, 'old'));
  const { up, relay, sse, client } = await validSetup(s, { flags: old, upstream: { readTimeout: '5s' } });
  const flags = {};
  for (let i = 0; i < 6; i++) flags[`d${i}`] = makeFlag(`d${i}`, 2, `drip-${i}-é€😀-${'ü'.repeat(40)}`);
  const text = frame('put', { path: '/', data: { flags, segments: {} } });
  const bytes = Buffer.byteLength(text);
  const start = Date.now();
  const dripping = up.drip(text, { chunkBytes: 1, intervalMs: 1 });
  await sleep(1000);
  await assertServes(relay, KEYS.prod, old, {}, 'half-way through the drip');
  assert.equal(sse.events.length, 1, 'no downstream event before the dripped put is complete');
  await dripping;
  const dripMs = Date.now() - start;
  const ev = await sse.nextEvent(3000);
  report(t, s, `slow drip (${bytes} B in ${dripMs} ms): downstream put after the last byte`, Date.now() - start - dripMs);
  assertAllPut(ev, flags, {}, 'dripped put');
  assert.equal(ev.json().data.flags.d3.variations[0], flags.d3.variations[0], 'UTF-8 intact');
  await assertServes(relay, KEYS.prod, flags, {}, 'after the drip');
  await waitVariation(client, 'd5', flags.d5.variations[0]);
  assert.equal(up.connections, 1, 'no reconnect during the drip');
  assert.equal((await envStatus(relay)).connectionStatus.state, 'VALID');
});
