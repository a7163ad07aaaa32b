// Process lifecycle: SIGTERM -> clean exit 0, even with open streams.
import assert from 'node:assert/strict';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, sleep } from '../support/http.mjs';

relayTest('SIGTERM right after startup exits 0', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, 1)) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  const res = await relay.terminate(5000);
  assert.deepEqual(res, { code: 0, signal: null }, `exit after SIGTERM: ${JSON.stringify(res)}`);
});

relayTest('SIGTERM with open SSE subscribers and an upstream stream exits 0 and closes the streams', async (t, s) => {
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: byKey(makeFlag('f', 1, 1)) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  const a = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  const b = await s.sse(`${relay.url}/flags`, { headers: auth(KEYS.prod) });
  const stalled = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod), paused: true });
  await a.nextEvent(5000);
  await b.nextEvent(5000);
  assert.equal(stalled.status, 200);
  const r = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.equal(r.status, 200);
  const t0 = Date.now();
  const res = await relay.terminate(5000);
  s.note(`exit ${Date.now() - t0} ms after SIGTERM`);
  assert.deepEqual(res, { code: 0, signal: null }, `exit after SIGTERM: ${JSON.stringify(res)}`);
  assert.ok(await a.waitClosed(2000), '/all subscriber must see its stream end');
  assert.ok(await b.waitClosed(2000), '/flags subscriber must see its stream end');
  await sleep(200);
  assert.equal(up.openStreams, 0, 'the upstream stream must be closed');
});
