// Before any data: polling 503, streams accepted but silent, /readyz 503 until every environment
// has data, then 200.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { relayTest, prodEnv, auth } from '../support/harness.mjs';
import { KEYS, makeFlag, byKey } from '../support/flags.mjs';
import { httpRequest, waitFor } from '../support/http.mjs';
import { assertAllPut, assertSseHeaders, assertFlagsMap } from '../support/assertions.mjs';

relayTest('no data yet: polling 503, /all 200 and silent, /readyz 503; all change when the put arrives', async (t, s) => {
  const dir = s.tmpDir();
  const stagingFile = path.join(dir, 'staging.json');
  const fs1 = makeFlag('file-flag', 1, 'from-file');
  fs.writeFileSync(stagingFile, JSON.stringify({ flags: byKey(fs1), segments: {} }));

  // The upstream accepts the stream but never sends a put.
  const up = await s.upstream({ sdkKey: KEYS.prod, flags: {}, sendPut: false });
  const relay = await s.relay({
    dir,
    upstreamUrl: up.url,
    environments: {
      ...prodEnv(),
      staging: { sdkKey: KEYS.staging, dataFile: stagingFile, dataFilePollInterval: '100ms' },
    },
  });
  await up.waitForOpenStream(KEYS.prod, 5000);

  // The file-backed environment is ready, the upstream-backed one is not: /readyz must be 503.
  await waitFor(async () => (await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.staging) })).status === 200, {
    timeoutMs: 5000,
    what: 'staging (dataFile) served',
  });
  const ready1 = await httpRequest(`${relay.url}/readyz`);
  assert.equal(ready1.status, 503, `/readyz while prod has no data: ${ready1.status}`);
  assert.equal((await httpRequest(`${relay.url}/healthz`)).status, 200, '/healthz is liveness only');
  // The metrics listener answers both probes the same way (it has its own connection cap).
  assert.equal((await httpRequest(`${relay.metricsUrl}/readyz`)).status, 503, '/readyz on the metrics port');
  assert.equal((await httpRequest(`${relay.metricsUrl}/healthz`)).status, 200, '/healthz on the metrics port');
  assert.equal((await httpRequest(`${relay.metricsUrl}/status`)).status, 404, 'only the probes and /metrics there');

  for (const p of ['/sdk/latest-all', '/sdk/latest-flags', '/sdk/latest-flags/x', '/sdk/flags', '/sdk/flags/x', '/sdk/segments/x']) {
    const r = await httpRequest(`${relay.url}${p}`, { headers: auth(KEYS.prod) });
    assert.equal(r.status, 503, `${p} before data: status ${r.status}`);
  }
  const wrong = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.wrong) });
  assert.equal(wrong.status, 401, 'an unknown key is still 401 before data');

  const st = (await httpRequest(`${relay.url}/status`)).json();
  const prod = st.environments?.prod;
  assert.ok(prod, `/status has no prod environment: ${JSON.stringify(st)}`);
  assert.equal(prod.dataSource, 'none', 'prod dataSource before data');
  assert.equal(prod.status, 'disconnected', 'prod status before data');
  assert.equal(prod.connectionStatus?.state, 'INITIALIZING', 'prod connectionStatus.state before data');
  assert.equal(st.status, 'degraded', 'top-level status while an environment has no data');

  const c = await s.sse(`${relay.url}/all`, { headers: auth(KEYS.prod) });
  assertSseHeaders(c, '/all before data');
  await c.expectNoEvent(1200);
  assert.ok(!c.isClosed, 'the stream must stay open while waiting for data');

  const f = makeFlag('late', 1, 'arrived');
  up.pushPut({ flags: byKey(f), segments: {} });
  assertAllPut(await c.nextEvent(5000), byKey(f), {}, 'put after data arrives');

  await waitFor(async () => (await httpRequest(`${relay.url}/readyz`)).status === 200, {
    timeoutMs: 3000,
    what: '/readyz 200 once every environment has data',
  });
  assert.equal((await httpRequest(`${relay.metricsUrl}/readyz`)).status, 200, '/readyz on the metrics port');
  const r = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.equal(r.status, 200);
  assertFlagsMap(r.json().flags, byKey(f));
  const st2 = (await httpRequest(`${relay.url}/status`)).json();
  assert.equal(st2.environments.prod.dataSource, 'upstream');
  assert.equal(st2.environments.prod.connectionStatus.state, 'VALID');
});

relayTest('/readyz is 503 while the upstream rejects the key (401) and no cache exists', async (t, s) => {
  // The relay is configured with a key the upstream does not know.
  const up = await s.upstream({ sdkKey: KEYS.staging, flags: byKey(makeFlag('x', 1, 1)) });
  const relay = await s.relay({ upstreamUrl: up.url, environments: prodEnv() });
  await waitFor(() => up.rejected >= 1, { timeoutMs: 5000, what: 'the relay to try the upstream' });
  const r = await httpRequest(`${relay.url}/readyz`);
  assert.equal(r.status, 503, `/readyz with no data: ${r.status}`);
  const p = await httpRequest(`${relay.url}/sdk/latest-all`, { headers: auth(KEYS.prod) });
  assert.ok([401, 503].includes(p.status), `/sdk/latest-all with no data and a rejected key: ${p.status}`);
});
