// Upstream connection faults: refused at start, retryable HTTP statuses, permanent 401/403/404,
// and no busy loop while the upstream refuses. Each test checks what SDK/SSE clients see and what
// /status and /metrics report, and prints recovery times (lines "# TIMING ...").
import assert from 'node:assert/strict';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, sleep } from '../support/http.mjs';
import { freePort } from '../support/ports.mjs';
import { sdkClient } from '../support/sdk.mjs';
import { assertAllPut } from '../support/assertions.mjs';
import {
  FAST, FAST_MAX_DELAY_MS, SLACK_MS, user, envStatus, waitEnv, stateIs, upstreamMetrics,
  assertStateGauge, waitMetrics, assertServes, latestAll, report, cpuSeconds, streamAttempts, gaps, waitAttempts,
  waitVariation,
  faultTest,
  blackHole,
} from '../support/faults.mjs';


faultTest('connection refused at start: INITIALIZING + NETWORK_ERROR, bounded retries, recovers when the upstream appears', async (t, s) => {
  const port = await freePort(); // nothing listens: connection refused
  const f1 = makeFlag('f1', 1, 'first');
  const t0 = Date.now();
  const relay = await s.relay({ upstreamUrl: `http://127.0.0.1:${port}`, environments: prodEnv(), cacheDir: null, upstream: FAST });
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal(sse.status, 200, 'downstream /all is accepted while the upstream is unreachable');
  const client = sdkClient(s, relay, KEYS.prod, { stream: true });

  const st = await waitEnv(relay, (e) => e.connectionStatus?.lastError?.kind === 'NETWORK_ERROR', { what: 'lastError.kind NETWORK_ERROR' });
  assert.equal(st.connectionStatus.state, 'INITIALIZING', 'never valid: state stays INITIALIZING');
  assert.equal(st.connectionStatus.lastError.statusCode, undefined, 'a network error has no statusCode');
  assert.equal(typeof st.connectionStatus.lastError.message, 'string');
  assert.ok(Math.abs(st.connectionStatus.lastError.time - Date.now()) < 10000, `lastError.time must be epoch ms: ${st.connectionStatus.lastError.time}`);
  assert.equal(st.dataSource, 'none');
  assert.equal((await latestAll(relay, KEYS.prod)).status, 503, 'no data yet: polling 503');

  // Let the backoff run for ~2 s after start: delays min(100*2^n, 500) ms minus 0-50 %, so
  // between 3 and ~12 attempts (a busy loop would make hundreds).
  await sleep(Math.max(0, 2000 - (Date.now() - t0)));
  const m = await upstreamMetrics(relay);
  assertStateGauge(m, 'initializing');
  assert.equal(m.connected, 0, 'flagrelay_upstream_connected');
  const attempts = m.reconnects.network_error;
  report(t, s, 'refused: reconnects_total{kind=network_error} after 2 s', attempts, 'attempts');
  assert.ok(attempts >= 3 && attempts <= 14, `reconnects_total{kind="network_error"} = ${attempts} within 2 s (expected 3..14 with 100 ms..500 ms backoff); all kinds ${JSON.stringify(m.reconnects)}`);

  // The upstream appears on that port.
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f1), port, heartbeatMs: 300 });
  const appeared = Date.now();
  await up.waitForConnections(1, FAST_MAX_DELAY_MS + SLACK_MS + 1000);
  const connectedMs = report(t, s, 'refused->upstream appears: new stream after', Date.now() - appeared);
  assertAllPut(await sse.nextEvent(5000), byKey(f1), {}, 'downstream put after recovery');
  const putMs = report(t, s, 'refused->upstream appears: downstream put after', Date.now() - appeared);
  await client.waitForInitialization({ timeout: 5 });
  report(t, s, 'refused->upstream appears: SDK initialized after', Date.now() - appeared);
  assert.equal(await client.variation('f1', user('u1'), 'default'), 'first');
  assert.ok(connectedMs <= FAST_MAX_DELAY_MS + SLACK_MS, `reconnected ${connectedMs} ms after the upstream appeared (bound maxReconnectDelay ${FAST_MAX_DELAY_MS} + ${SLACK_MS} ms)`);
  assert.ok(putMs <= FAST_MAX_DELAY_MS + SLACK_MS + 500, `downstream put ${putMs} ms after the upstream appeared`);

  const ok = await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  assert.equal(ok.status, 'connected');
  assert.equal(ok.dataSource, 'upstream');
  assert.equal(ok.connectionStatus.mode, 'streaming', 'connectionStatus.mode');
  const m2 = await waitMetrics(relay, (x) => x.state.valid === 1, { what: 'state valid' });
  assertStateGauge(m2, 'valid');
  assert.equal(m2.connected, 1);
});

faultTest('503 while running: INTERRUPTED + ERROR_RESPONSE 503, backoff spacing, last good data kept, recovery', async (t, s) => {
  const f = makeFlag('f', 1, 'good');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f), heartbeatMs: 300 });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: FAST });
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await sse.nextEvent(5000), byKey(f), {});
  const client = sdkClient(s, relay, KEYS.prod, { stream: true });
  await client.waitForInitialization({ timeout: 5 });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });

  up.allStatus = 503;
  const failAt = Date.now();
  up.dropStreams();
  const st = await waitEnv(relay, (e) => e.connectionStatus?.state === 'INTERRUPTED' && e.connectionStatus.lastError?.statusCode === 503,
    { what: 'INTERRUPTED with lastError.statusCode 503' });
  assert.equal(st.connectionStatus.lastError.kind, 'ERROR_RESPONSE');
  assert.ok(st.connectionStatus.stateSince >= failAt - 50, 'stateSince moved with the interruption');
  assert.equal(st.dataSource, 'upstream', 'data is still the upstream data');

  // ~2.5 s of 503s: retried with backoff, never a tight loop.
  await sleep(2500);
  const fails = streamAttempts(up, KEYS.prod, failAt).filter((r) => r.status === 503);
  const g = gaps(fails.map((r) => r.time));
  report(t, s, '503: attempts in 2.5 s', fails.length, `attempts (gaps ms: ${g.join(',')})`);
  assert.ok(fails.length >= 4 && fails.length <= 16, `${fails.length} attempts answered 503 in ~2.5 s (expected 4..16 with 100..500 ms backoff)`);
  // Retry n waits min(100 ms * 2^n, 500 ms) minus 0-50 %: the gap before 503 attempt i+1 is
  // retry i+1's delay (attempt 0 followed the dropped stream after retry 0's delay).
  for (const [i, gap] of g.entries()) {
    const nominal = Math.min(100 * 2 ** (i + 1), FAST_MAX_DELAY_MS);
    assert.ok(gap >= nominal / 2 - 20 && gap <= nominal + 400,
      `gap ${i} between 503 retries is ${gap} ms; backoff min(100*2^${i + 1}, 500) = ${nominal} ms minus 0-50 % jitter allows ${nominal / 2}..${nominal} ms (all gaps ${g.join(',')})`);
  }

  // Clients keep the last good data; the downstream stream stays open.
  assert.ok(!sse.isClosed, 'downstream SSE stream must stay open while the upstream fails');
  assert.equal(sse.events.length, 1, `no downstream event during the outage: ${sse.events.slice(1).map((e) => e.event).join(',')}`);
  assert.equal(await client.variation('f', user('u1'), 'default'), 'good', 'SDK keeps the last good value');
  await assertServes(relay, KEYS.prod, byKey(f), {}, 'polling during the outage');
  const m = await upstreamMetrics(relay);
  assertStateGauge(m, 'interrupted');
  assert.equal(m.connected, 0);
  assert.ok(m.reconnects.error_response >= 4, `reconnects_total{kind="error_response"}: ${JSON.stringify(m.reconnects)}`);

  // Recovery.
  const f2 = makeFlag('f', 2, 'after-recovery');
  up.setData({ flags: byKey(f2) });
  up.allStatus = null;
  const back = Date.now();
  await up.waitForConnections(2, FAST_MAX_DELAY_MS + SLACK_MS + 1000);
  const reconnectMs = report(t, s, '503->200: new stream after', Date.now() - back);
  assertAllPut(await sse.waitForEvent((e) => e.event === 'put', 5000, 'put after recovery'), byKey(f2), {}, 'put after recovery');
  await waitVariation(client, 'f', 'after-recovery');
  report(t, s, '503->200: SDK has the new value after', Date.now() - back);
  assert.ok(reconnectMs <= FAST_MAX_DELAY_MS + SLACK_MS, `recovered ${reconnectMs} ms after the upstream returned (bound ${FAST_MAX_DELAY_MS} + ${SLACK_MS} ms)`);
  const ok = await waitEnv(relay, stateIs('VALID'), { what: 'VALID again' });
  assert.equal(ok.status, 'connected');
  assertStateGauge(await upstreamMetrics(relay), 'valid');
});

faultTest('400, 408, 429, 500, 502, 504 are retried as ERROR_RESPONSE (stays INITIALIZING), then the stream succeeds', async (t, s) => {
  const f = makeFlag('f', 1, 'v');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f), heartbeatMs: 300, allStatus: 400 });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: FAST });
  for (const code of [400, 408, 429, 500, 502, 504]) {
    up.allStatus = code;
    const since = Date.now();
    // Two answered attempts with this status: the second proves it was retried.
    await waitAttempts(up, KEYS.prod, 2, { since, timeoutMs: 3000 }).catch((err) => {
      throw new Error(`status ${code} not retried: ${err.message}`);
    });
    const e = await waitEnv(relay, (x) => x.connectionStatus?.lastError?.statusCode === code, { what: `lastError.statusCode ${code}` });
    assert.equal(e.connectionStatus.state, 'INITIALIZING', `state after ${code} (never valid)`);
    assert.equal(e.connectionStatus.lastError.kind, 'ERROR_RESPONSE', `lastError.kind after ${code}`);
  }
  const m = await upstreamMetrics(relay);
  assertStateGauge(m, 'initializing');
  assert.ok(m.reconnects.error_response >= 12, `reconnects_total{kind="error_response"}: ${JSON.stringify(m.reconnects)}`);
  up.allStatus = null;
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID once the upstream answers 200', timeoutMs: FAST_MAX_DELAY_MS + SLACK_MS + 2000 });
  await assertServes(relay, KEYS.prod, byKey(f), {});
});

faultTest('401 at start: OFF, never retried, downstream polling and /all answer 401', async (t, s) => {
  // The upstream only knows the staging key: prod's key is rejected with 401.
  const up = await s.upstream({ sdkKey: KEYS.staging, flags: byKey(makeFlag('x', 1, 1)) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: FAST });
  const e = await waitEnv(relay, stateIs('OFF'), { what: 'state OFF' });
  assert.equal(e.connectionStatus.lastError?.kind, 'ERROR_RESPONSE');
  assert.equal(e.connectionStatus.lastError?.statusCode, 401);
  assert.equal(e.status, 'disconnected');
  // 1.5 s is three maximal backoff periods: a retry would have happened.
  await sleep(1500);
  assert.equal(up.streamRequests(KEYS.prod).length, 1, `the upstream saw ${up.streamRequests(KEYS.prod).length} /all requests for a rejected key (must be 1: never retried)`);
  const m = await upstreamMetrics(relay);
  assertStateGauge(m, 'off');
  assert.equal(m.connected, 0);
  s.note(`401: connectionStatus.mode ${JSON.stringify(e.connectionStatus.mode)}`);

  const poll = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.equal(poll.status, 401, `downstream /sdk/latest-all for an OFF environment: ${poll.status}`);
  const flagsPoll = await httpRequest(`${relay.url}/sdk/latest-flags`, { headers: auth(KEYS.prod) });
  assert.equal(flagsPoll.status, 401, `downstream /sdk/latest-flags for an OFF environment: ${flagsPoll.status}`);
  const c = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assert.equal(c.status, 401, `downstream /all for an OFF environment: ${c.status}`);
  assert.equal((await httpRequest(`${relay.url}/readyz`)).status, 503, '/readyz with an OFF environment and no data');
  assert.ok(relay.running(), 'the relay keeps running');
});

faultTest('403 and 404 at start: OFF, never retried', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('x', 1, 1)), environments: { [KEYS.staging]: { flags: {} } } });
  up.statusByKey.set(KEYS.prod, 403);
  up.statusByKey.set(KEYS.staging, 404);
  const relay = await s.relay({
    upstreamUrl: up.url,
    cacheDir: null,
    upstream: FAST,
    environments: { ...prodEnv(), staging: { sdkKey: KEYS.staging } },
  });
  for (const [env, key, code] of [['prod', KEYS.prod, 403], ['staging', KEYS.staging, 404]]) {
    const e = await waitEnv(relay, stateIs('OFF'), { env, what: `${env} OFF after ${code}` });
    assert.equal(e.connectionStatus.lastError?.statusCode, code, `${env} lastError.statusCode`);
    assert.equal(e.connectionStatus.lastError?.kind, 'ERROR_RESPONSE');
  }
  await sleep(1500);
  assert.equal(up.streamRequests(KEYS.prod).length, 1, '403: never retried');
  assert.equal(up.streamRequests(KEYS.staging).length, 1, '404: never retried');
  assertStateGauge(await upstreamMetrics(relay, 'prod'), 'off', 'prod state gauge');
  assertStateGauge(await upstreamMetrics(relay, 'staging'), 'off', 'staging state gauge');
  assert.equal((await latestAll(relay, KEYS.prod)).status, 401, 'downstream polling for the 403 environment');
  assert.equal((await latestAll(relay, KEYS.staging)).status, 401, 'downstream polling for the 404 environment');
});

faultTest('key revoked while running (401 on reconnect): OFF, no retry, downstream 401', async (t, s) => {
  const f = makeFlag('f', 1, 'v');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f), heartbeatMs: 300 });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: FAST });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  await sse.nextEvent(3000);
  up.statusByKey.set(KEYS.prod, 401);
  const revokedAt = Date.now();
  up.dropStreams();
  const e = await waitEnv(relay, stateIs('OFF'), { what: 'OFF after the key was revoked' });
  assert.equal(e.connectionStatus.lastError?.statusCode, 401);
  await sleep(1500);
  const after = streamAttempts(up, KEYS.prod, revokedAt);
  assert.equal(after.length, 1, `${after.length} /all requests after the revocation (must be 1: never retried)`);
  assertStateGauge(await upstreamMetrics(relay), 'off');
  s.note(`downstream SSE stream after revocation: closed=${sse.isClosed} (${JSON.stringify(sse.closedInfo)})`);
  const poll = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.equal(poll.status, 401, `downstream polling after the key was revoked: ${poll.status} (contract: 401 for an OFF environment)`);
});

faultTest('no busy loop: 5 s against a refused upstream (maxReconnectDelay 1s) costs < 0.5 s CPU', async (t, s) => {
  const port = await freePort();
  const relay = await s.relay({
    upstreamUrl: `http://127.0.0.1:${port}`,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { initialReconnectDelay: '100ms', maxReconnectDelay: '1s' },
  });
  await sleep(200);
  const before = cpuSeconds(relay.pid);
  const r0 = (await upstreamMetrics(relay)).reconnects.network_error ?? 0;
  await sleep(5000);
  const used = cpuSeconds(relay.pid) - before;
  const r1 = (await upstreamMetrics(relay)).reconnects.network_error ?? 0;
  report(t, s, 'refused upstream: CPU used in 5 s', used, `s (reconnect attempts ${r1 - r0})`);
  assert.ok(relay.running(), 'relay still running');
  assert.ok(used < 0.5, `the relay used ${used.toFixed(2)} s of CPU in 5 s against a refused upstream (bound 0.5 s)`);
  assert.ok(r1 - r0 >= 3 && r1 - r0 <= 15, `${r1 - r0} reconnect attempts in 5 s with delays 0.5..1 s at the cap (expected 3..15)`);
});

faultTest('reconnectResetAfter: the backoff resets only after that long of healthy streaming', async (t, s) => {
  const f = makeFlag('f', 1, 'v');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f), heartbeatMs: 200 });
  const relay = await s.relay({
    upstreamUrl: up.url,
    environments: prodEnv(),
    upstream: { initialReconnectDelay: '100ms', maxReconnectDelay: '800ms', reconnectResetAfter: '1500ms', readTimeout: '2s' },
  });
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID' });
  const firstRetryAfterDrop = async () => {
    up.allStatus = 503;
    const at = Date.now();
    up.dropStreams();
    const [a] = await waitAttempts(up, KEYS.prod, 1, { since: at, timeoutMs: 3000 });
    return a.time - at;
  };
  // Build the backoff up to its cap: four failed attempts (100, 200, 400, 800 ms nominal).
  await firstRetryAfterDrop();
  await waitAttempts(up, KEYS.prod, 4, { since: Date.now() - 10, timeoutMs: 4000 });
  up.allStatus = null;
  await up.waitForConnections(2, 3000);
  // Healthy for 300 ms only (< reconnectResetAfter): the next delay is still at the cap, 400..800 ms.
  await sleep(300);
  const notReset = await firstRetryAfterDrop();
  report(t, s, 'reconnectResetAfter 1.5s: first retry after 0.3 s healthy', notReset);
  up.allStatus = null;
  await up.waitForConnections(3, 3000);
  // Healthy for 2 s (> reconnectResetAfter): back to the first step, 50..100 ms.
  await sleep(2000);
  const reset = await firstRetryAfterDrop();
  report(t, s, 'reconnectResetAfter 1.5s: first retry after 2 s healthy', reset);
  up.allStatus = null;
  assert.ok(notReset >= 380, `first retry ${notReset} ms after a drop that followed only 300 ms of healthy streaming: the backoff must not reset before reconnectResetAfter (expected 400..800 ms)`);
  assert.ok(reset <= 300, `first retry ${reset} ms after a drop that followed 2 s of healthy streaming: the backoff must be back to initialReconnectDelay (50..100 ms)`);
  await waitEnv(relay, stateIs('VALID'), { what: 'VALID at the end' });
});

faultTest('black-holed upstream (accepts TCP, never answers the request): a new connection after readTimeout, NETWORK_ERROR', async (t, s) => {
  const { port: holePort, conns, sockets } = await blackHole(s);
  const relay = await s.relay({
    upstreamUrl: `http://127.0.0.1:${holePort}`,
    environments: prodEnv(),
    cacheDir: null,
    upstream: { ...FAST, readTimeout: '1s', connectTimeout: '1s' },
  });
  const deadline = Date.now() + 1000 + FAST_MAX_DELAY_MS + SLACK_MS + 2000;
  while (conns.length < 2 && Date.now() < deadline) await sleep(20);
  assert.ok(conns.length >= 2, `${conns.length} TCP connection(s) to a silent upstream within ${deadline - conns[0]} ms: the relay must give up after readTimeout (1 s) and reconnect`);
  const gap = report(t, s, 'black hole (readTimeout 1s): second TCP connection after first', conns[1] - conns[0]);
  assert.ok(gap >= 900 && gap <= 1000 + FAST_MAX_DELAY_MS + SLACK_MS, `second connection ${gap} ms after the first (readTimeout 1 s + backoff <= ${FAST_MAX_DELAY_MS} ms)`);
  const e = await waitEnv(relay, (x) => x.connectionStatus?.lastError != null, { what: 'a lastError' });
  assert.equal(e.connectionStatus.state, 'INITIALIZING');
  assert.equal(e.connectionStatus.lastError.kind, 'NETWORK_ERROR', JSON.stringify(e.connectionStatus.lastError));
  assert.ok(sockets.size <= 1, `${sockets.size} connections still open: abandoned attempts must be closed`);
});

faultTest('one failing environment does not disturb another: prod 503s while staging streams patches', async (t, s) => {
  const up = await s.upstream({
    sdkKey: KEYS.prod,
    flags: byKey(makeFlag('p', 1, 'p1')),
    environments: { [KEYS.staging]: { flags: byKey(makeFlag('st', 1, 's1')) } },
    heartbeatMs: 250,
  });
  const relay = await s.relay({ upstreamUrl: up.url, upstream: FAST, environments: { ...prodEnv(), staging: { sdkKey: KEYS.staging } } });
  await waitEnv(relay, stateIs('VALID'), { env: 'staging', what: 'staging VALID' });
  await waitEnv(relay, stateIs('VALID'), { env: 'prod', what: 'prod VALID' });
  const sse = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.staging) });
  await sse.nextEvent(3000);
  up.statusByKey.set(KEYS.prod, 503);
  up.dropStreams(KEYS.prod);
  await waitEnv(relay, stateIs('INTERRUPTED'), { env: 'prod', what: 'prod INTERRUPTED' });
  for (let v = 2; v <= 4; v++) {
    up.pushPatch(makeFlag('st', v, `s${v}`), { key: KEYS.staging });
    const ev = await sse.nextEvent(2000);
    assert.equal(ev.json().data.version, v, 'staging patch while prod fails');
    await sleep(300);
  }
  assert.equal(up.connectionsFor(KEYS.staging), 1, 'staging stream untouched by prod failures');
  const st = await envStatus(relay, 'staging');
  assert.equal(st.connectionStatus.state, 'VALID');
  assert.equal(st.status, 'connected');
  assertStateGauge(await upstreamMetrics(relay, 'staging'), 'valid', 'staging state gauge');
  assertStateGauge(await upstreamMetrics(relay, 'prod'), 'interrupted', 'prod state gauge');
  await assertServes(relay, KEYS.prod, byKey(makeFlag('p', 1, 'p1')), {}, 'prod keeps its data');
});

faultTest('SIGTERM while the upstream refuses, black-holes or answers 503: clean exit (0) within 3 s', async (t, s) => {
  const refusedPort = await freePort();
  const hole = await blackHole(s);
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: {}, allStatus: 503 });
  const targets = [
    ['refused', `http://127.0.0.1:${refusedPort}`],
    ['black hole', `http://127.0.0.1:${hole.port}`],
    ['503', up.url],
  ];
  const relays = [];
  for (const [label, url] of targets) {
    relays.push([label, await s.relay({ upstreamUrl: url, environments: prodEnv(), cacheDir: null, upstream: { ...FAST, readTimeout: '30s', connectTimeout: '30s' }, label })]);
  }
  await sleep(800);
  for (const [label, relay] of relays) {
    const at = Date.now();
    const res = await relay.terminate(3000);
    report(t, s, `SIGTERM during upstream fault (${label}): exit after`, Date.now() - at, `ms ${JSON.stringify(res)}`);
    assert.deepEqual(res, { code: 0, signal: null }, `${label}: exit after SIGTERM`);
  }
});

faultTest('401 at start with a cache: OFF, downstream 401 (cached data of a rejected key is not served)', async (t, s) => {
  const dir = s.tmpDir();
  const f = makeFlag('f', 1, 'cached');
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f) });
  const seed = await s.relay({ dir, upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'seed' });
  await waitEnv(seed, stateIs('VALID'), { what: 'seed VALID' });
  await seed.terminate();
  up.statusByKey.set(KEYS.prod, 401);
  const relay = await s.relay({ dir, upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'key rejected' });
  const e = await waitEnv(relay, stateIs('OFF'), { what: 'OFF' });
  s.note(`OFF with cache: dataSource=${e.dataSource}`);
  const poll = await latestAll(relay, KEYS.prod);
  assert.equal(poll.status, 401, `downstream polling for an OFF environment with cached data: ${poll.status} (contract: 401)`);
});
