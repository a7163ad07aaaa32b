// Chaining: relay A streams from relay B (upstream.streamUri = B), B from the fake upstream.
import assert from 'node:assert/strict';
import path from 'node:path';
import { prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { sdkClient, nextEmit } from '../support/sdk.mjs';
import { sleep } from '../support/http.mjs';
import { makeTestPki } from '../support/tls.mjs';
import { assertAllPut } from '../support/assertions.mjs';
import { sampleSum } from '../support/prom.mjs';
import {
  FAST, FAST_MAX_DELAY_MS, SLACK_MS, user, waitEnv, stateIs, upstreamMetrics, assertStateGauge,
  assertServes, report, waitVariation,
  faultTest,
} from '../support/faults.mjs';

faultTest('chained relays A -> B -> upstream: patches reach clients of A; A is VALID; A recovers when B restarts', async (t, s) => {
  const f1 = makeFlag('chained', 1, 'v1');
  const kept = makeFlag('kept', 1, 'still-here'); // never changed: shows A keeps its data while B is down
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(f1, kept), heartbeatMs: 300 });
  const dirB = s.tmpDir();
  const relayB = await s.relay({ dir: dirB, upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'B' });
  const relayA = await s.relay({ upstreamUrl: relayB.url, environments: prodEnv(), upstream: { ...FAST, readTimeout: '5s' }, label: 'A' });
  const a = await waitEnv(relayA, stateIs('VALID'), { what: 'A VALID' });
  assert.equal(a.dataSource, 'upstream');
  assert.equal(a.status, 'connected');
  assertStateGauge(await upstreamMetrics(relayA), 'valid', 'A state gauge');
  await assertServes(relayA, KEYS.prod, byKey(f1, kept), {}, 'A polling');

  const sse = await s.sse(`${relayA.url}/all`, { headers: auth(KEYS.prod) });
  assertAllPut(await sse.nextEvent(3000), byKey(f1, kept), {}, 'A /all put');
  const client = sdkClient(s, relayA, KEYS.prod, { stream: true });
  await client.waitForInitialization({ timeout: 5 });
  assert.equal(await client.variation('chained', user('u1'), 'd'), 'v1');

  const samples = [];
  for (let v = 2; v <= 4; v++) {
    const upd = nextEmit(client, 'update:chained', 5000);
    const at = performance.now();
    up.pushPatch(makeFlag('chained', v, `v${v}`));
    const ev = await sse.nextEvent(3000);
    assert.equal(ev.event, 'patch');
    assert.equal(ev.json().data.version, v);
    await upd;
    samples.push(performance.now() - at);
    assert.equal(await client.variation('chained', user('u1'), 'd'), `v${v}`);
  }
  report(t, s, 'chain: upstream patch -> SDK on A (ms, 3 samples)', samples.map((x) => x.toFixed(1)).join(', '), '');
  up.pushDelete('flags', 'chained', 5);
  assert.equal((await sse.nextEvent(3000)).event, 'delete');
  await waitVariation(client, 'chained', 'd', { fallback: 'd' });

  // B goes away: A is interrupted, keeps its data; B comes back on the same port (with its cache).
  await relayB.kill();
  await waitEnv(relayA, stateIs('INTERRUPTED'), { what: 'A INTERRUPTED while B is down' });
  await assertServes(relayA, KEYS.prod, byKey(kept), {}, 'A keeps its data while B is down');
  assert.equal(await client.variation('kept', user('u1'), 'd'), 'still-here', 'the SDK on A keeps its data while B is down');
  up.pushPatch(makeFlag('chained', 6, 'v6'));
  const back = Date.now();
  const relayB2 = await s.relay({ dir: dirB, port: relayB.port, upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'B restarted' });
  await waitEnv(relayA, stateIs('VALID'), { what: 'A VALID again', timeoutMs: FAST_MAX_DELAY_MS + SLACK_MS + 3000 });
  report(t, s, 'chain: B restarted -> A VALID after', Date.now() - back);
  await waitVariation(client, 'chained', 'v6');
  report(t, s, 'chain: B restarted -> SDK on A has v6 after', Date.now() - back);
  assert.ok(relayB2.running());
});

faultTest('chained: the key is rejected upstream -> B is OFF and answers 401 -> A is OFF and does not retry', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.staging, flags: {} }); // prod's key is unknown: 401
  const relayB = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), cacheDir: null, upstream: FAST, label: 'B' });
  await waitEnv(relayB, stateIs('OFF'), { what: 'B OFF' });
  const relayA = await s.relay({ upstreamUrl: relayB.url, environments: prodEnv(), cacheDir: null, upstream: FAST, label: 'A' });
  const a = await waitEnv(relayA, stateIs('OFF'), { what: 'A OFF (B answers 401)' });
  assert.equal(a.connectionStatus.lastError?.statusCode, 401);
  const before = (await upstreamMetrics(relayB)).parsed;
  await sleep(1500);
  const after = (await upstreamMetrics(relayB)).parsed;
  const allReq = (p) => sampleSum(p, 'flagrelay_http_requests_total', { route: '/all' }) ?? 0;
  assert.ok(allReq(before) >= 1, `B counted no /all request from A (flagrelay_http_requests_total{route="/all"})`);
  assert.equal(allReq(after), allReq(before), 'A retried /all on B after a 401');
});

faultTest('chained over HTTPS: A -> B (listen.tls, test CA in A upstream.tls.caFile) -> upstream', async (t, s) => {
  const p = makeTestPki(path.join(s.tmpDir('flagrelay-pki-'), 'pki'));
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('c', 1, 'v1')), heartbeatMs: 300 });
  const relayB = await s.relay({ upstreamUrl: up.url, environments: prodEnv(), upstream: FAST, label: 'B (https)',
    extra: { listen: { tls: { certFile: p.good.certFile, keyFile: p.good.keyFile } } }, waitHealthy: false });
  const bUrl = `https://127.0.0.1:${relayB.port}`;
  const relayA = await s.relay({ upstreamUrl: bUrl, environments: prodEnv(), upstream: { ...FAST, tls: { caFile: p.caFile } }, label: 'A' });
  await waitEnv(relayA, stateIs('VALID'), { what: 'A VALID through B over HTTPS', timeoutMs: 8000 });
  const sse = await s.sse(`${relayA.url}/all`, { headers: auth(KEYS.prod) });
  await sse.nextEvent(3000);
  up.pushPatch(makeFlag('c', 2, 'v2'));
  const ev = await sse.nextEvent(3000);
  assert.equal(ev.json().data.version, 2);
});
