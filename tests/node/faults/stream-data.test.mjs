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
  assertStateGauge, assertServes, latestAll, report, waitVariation, frame, cpuSeconds, rssKiB, gaps,
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
});

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

faultTest('SSE framing variants are parsed (CRLF, multi-line data, comments/id/retry, no space, two events per write); unknown events and paths ignored', async (t, s) => {
  const { up, relay, sse, client } = await validSetup(s, { flags: byKey(makeFlag('a', 1, 'v1')), upOpts: { heartbeatMs: 250 } });
  const patchOf = (v) => JSON.stringify({ path: '/flags/a', data: makeFlag('a', v, `v${v}`) });
  const waitA = async (v, what) => {
    const deadline = Date.now() + 2000;
    let got;
    while (Date.now() < deadline) {
      got = (await latestAll(relay, KEYS.prod)).body?.flags?.a?.version;
      if (got === v) return;
      await sleep(20);
    }
    assert.fail(`${what}: flag a is at version ${got}, expected ${v} (event not parsed?)`);
  };
  const cases = [
    ['CRLF line ends', `event: patch\r\ndata: ${patchOf(2)}\r\n\r\n`, 2],
    ['multi-line data (joined with \\n)', `event: patch\ndata: {"path":"/flags/a",\ndata: "data":${JSON.stringify(makeFlag('a', 3, 'v3'))}}\n\n`, 3],
    ['comments, id and retry fields inside an event', `: c1\nid: 17\nevent: patch\n: c2\nretry: 5000\ndata: ${patchOf(4)}\n\n`, 4],
    ['no space after the colon', `event:patch\ndata:${patchOf(5)}\n\n`, 5],
  ];
  for (const [what, raw, v] of cases) {
    up.pushRaw(raw);
    await waitA(v, what);
  }
  // Unknown event name and unknown path: ignored (no change, no error, no reconnect).
  up.pushRaw(frame('mystery', { path: '/flags/a', data: makeFlag('a', 99, 'mystery') }));
  up.pushRaw(frame('patch', { path: '/widgets/a', data: { key: 'a', version: 100 } }));
  // Two events in one write.
  up.pushRaw(frame('patch', { path: '/flags/a', data: makeFlag('a', 6, 'v6') }) + frame('patch', { path: '/flags/b', data: makeFlag('b', 1, 'b1') }));
  await waitA(6, 'two events in one write (first)');
  // Each change is committed and published on its own, so the second may trail the first.
  let body;
  for (const deadline = Date.now() + 2000; Date.now() < deadline; await sleep(20)) {
    body = (await latestAll(relay, KEYS.prod)).body;
    if (body.flags.b?.version === 1) break;
  }
  assert.equal(body.flags.b?.version, 1, 'two events in one write (second)');
  assert.equal(body.flags.a.variations[0], 'v6');
  await waitVariation(client, 'b', 'b1');
  assert.equal(await client.variation('a', user('u1'), 'd'), 'v6');
  assert.ok(!sse.events.some((e) => e.event === 'mystery'), 'an unknown upstream event was forwarded downstream');
  assert.ok(!sse.events.some((e) => e.data.includes('/widgets/')), 'a patch with an unknown path was forwarded downstream');
  assert.equal(up.connections, 1, 'none of these may restart the stream');
  const e = await envStatus(relay);
  assert.equal(e.connectionStatus.state, 'VALID');
  assert.equal(e.connectionStatus.lastError, undefined, `no error expected: ${JSON.stringify(e.connectionStatus.lastError)}`);
});

faultTest('SSE with bare CR line ends (allowed by the SSE spec) is parsed', async (t, s) => {
  const { up, relay } = await validSetup(s, { flags: byKey(makeFlag('a', 1, 'v1')), upOpts: { heartbeatMs: 250 } });
  up.pushRaw(`event: patch\rdata: ${JSON.stringify({ path: '/flags/a', data: makeFlag('a', 2, 'v2') })}\r\r`);
  const deadline = Date.now() + 2000;
  let got;
  while (Date.now() < deadline && got !== 2) {
    got = (await latestAll(relay, KEYS.prod)).body?.flags?.a?.version;
    await sleep(20);
  }
  assert.equal(got, 2, 'patch framed with bare CR line ends not applied');
  assert.equal(up.connections, 1);
});

for (const [label, arm] of [
  ['invalid JSON on every connection', (up) => { up.connectPayload = 'event: put\ndata: {not json\n\n'; }],
  ['stream ended right after the 200 headers', (up) => { up.connectPayload = ''; up.endAfterConnectPayload = true; }],
]) {
  faultTest(`no reconnect storm: ${label} -> growing backoff, little CPU`, async (t, s) => {
    const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, 1)) });
    arm(up);
    const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: FAST });
    const cpu0 = cpuSeconds(relay.pid);
    const t0 = Date.now();
    await sleep(3000);
    const cpu = cpuSeconds(relay.pid) - cpu0;
    const conns = up.streamRequests(KEYS.prod).filter((r) => r.status === 200 && r.time >= t0 - 500);
    const g = gaps(conns.map((r) => r.time));
    report(t, s, `reconnect storm check (${label}): connections in 3 s`, conns.length, `(gaps ${g.join(',')} ms; CPU ${cpu.toFixed(2)} s)`);
    assert.ok(conns.length >= 3, `only ${conns.length} connection(s) in 3 s: the relay must keep retrying`);
    assert.ok(conns.length <= 15, `${conns.length} connections in 3 s (gaps ${g.join(',')} ms): a stream that fails at once must not reset the backoff (100 ms doubling to 500 ms allows <= 15)`);
    for (const [i, gap] of g.entries()) {
      if (i >= 3) assert.ok(gap >= 200, `gap ${i} is ${gap} ms (gaps ${g.join(',')}): the backoff should have reached its 500 ms cap (250..500 ms with jitter)`);
    }
    assert.ok(cpu < 0.3, `CPU ${cpu.toFixed(2)} s in 3 s`);
    const e = await envStatus(relay);
    assert.equal(e.connectionStatus.state, 'INITIALIZING', 'never valid');
    assert.equal(e.connectionStatus.lastError?.kind, label.startsWith('invalid') ? 'INVALID_DATA' : 'NETWORK_ERROR');
  });
}

faultTest('an unterminated data line growing past maxEventBytes is cut off while it streams; last good data kept', async (t, s) => {
  const good = byKey(makeFlag('g', 1, 'good'));
  const { up, relay, client } = await validSetup(s, { flags: good, upstream: { maxEventBytes: '1MiB', readTimeout: '5s' } });
  up.sendPut = false;
  const rss0 = rssKiB(relay.pid);
  const [stream] = [...up.streams];
  let closed = false;
  stream.res.on('close', () => {
    closed = true;
  });
  const LIMIT = 24 << 20;
  const chunk = Buffer.alloc(64 << 10, 'x');
  let written = 0;
  stream.res.write('event: put\ndata: {"path":"/","data":{"flags":{"g":"');
  const start = Date.now();
  while (!closed && written < LIMIT && Date.now() - start < 10000) {
    const ok = stream.res.write(chunk);
    written += chunk.length;
    if (!ok) {
      await Promise.race([new Promise((r) => stream.res.once('drain', r)), sleep(200)]);
    }
  }
  const deadline = Date.now() + 3000;
  while (!closed && Date.now() < deadline) await sleep(20);
  const rss1 = rssKiB(relay.pid);
  report(t, s, 'unterminated line: relay closed the stream after', written / 1048576, `MiB written (RSS ${rss0} -> ${rss1} KiB)`);
  assert.ok(closed, `the relay kept reading an unterminated ${(written / 1048576).toFixed(0)} MiB event (maxEventBytes 1MiB)`);
  assert.ok(written < 16 << 20, `${(written / 1048576).toFixed(1)} MiB accepted before the cut (maxEventBytes 1 MiB plus socket buffers)`);
  const e = await waitEnv(relay, (x) => x.connectionStatus?.lastError?.kind === 'INVALID_DATA', { what: 'INVALID_DATA' });
  assert.equal(e.connectionStatus.state, 'INTERRUPTED');
  await up.waitForConnections(2, 3000);
  await assertServes(relay, KEYS.prod, good, {}, 'last good data');
  assert.equal(await client.variation('g', user('u1'), 'd'), 'good');
});
